/* Growing an array by doubling: the one way the library makes room. */
#ifndef FUTURES_GROW_H
#define FUTURES_GROW_H
#include <stdlib.h>

/* Returns arr with room for at least `need` elements of `size` bytes,
 * updating *cap (doubling, from 4); NULL if out of memory, arr untouched. */
static inline void *grow_array(void *arr, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return arr;
  size_t n = *cap ? *cap : 4;
  while (n < need) n *= 2;
  void *p = realloc(arr, n * size);
  if (p) *cap = n;
  return p;
}
#endif
