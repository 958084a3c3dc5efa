/* A hash map from ids to pointers; see idmap.h. */
#include <stdlib.h>
#include "idmap.h"

static size_t slot(uint64_t key, size_t cap) {
  return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

void *idmap_get(const idmap *m, uint64_t key) {
  if (!m->n) return NULL;
  for (size_t i = slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
    if (!m->e[i].val) return NULL;
    if (m->e[i].key == key) return m->e[i].val;
  }
}

/* A table twice the size, every entry hashed again: a rehash, not a copy,
 * so it cannot be a realloc. */
static int rehash(idmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  idmap_ent *e = calloc(cap, sizeof *e);
  if (!e) return 0;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->e[i].val) continue;
    size_t j = slot(m->e[i].key, cap);
    while (e[j].val) j = (j + 1) & (cap - 1);
    e[j] = m->e[i];
  }
  free(m->e);
  m->e = e;
  m->cap = cap;
  return 1;
}

int idmap_put(idmap *m, uint64_t key, void *val) {
  if ((m->n + 1) * 2 > m->cap && !rehash(m)) return 0;
  size_t i = slot(key, m->cap);
  while (m->e[i].val && m->e[i].key != key) i = (i + 1) & (m->cap - 1);
  if (!m->e[i].val) m->n++;
  m->e[i].key = key;
  m->e[i].val = val;
  return 1;
}

void *idmap_del(idmap *m, uint64_t key) {
  if (!m->n) return NULL;
  size_t mask = m->cap - 1, i = slot(key, m->cap);
  while (m->e[i].val && m->e[i].key != key) i = (i + 1) & mask;
  void *val = m->e[i].val;
  if (!val) return NULL;
  /* Shift back the entries after the hole that may not stay past it. */
  for (size_t j = (i + 1) & mask; m->e[j].val; j = (j + 1) & mask) {
    size_t home = slot(m->e[j].key, m->cap);
    if (((j - home) & mask) >= ((j - i) & mask)) {
      m->e[i] = m->e[j];
      i = j;
    }
  }
  m->e[i].val = NULL;
  m->n--;
  return val;
}

void idmap_free(idmap *m) {
  free(m->e);
  m->e = NULL;
  m->cap = m->n = 0;
}
