/* A hash map from 64-bit ids to non-NULL pointers: open addressing with
 * linear probing, at most half full, deletions by backward shift (no
 * tombstones), so every operation is O(1) on average. */
#ifndef FUTURES_IDMAP_H
#define FUTURES_IDMAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct idmap_ent { uint64_t key; void *val; } idmap_ent;
typedef struct idmap { idmap_ent *e; size_t cap, n; } idmap;   /* zeroed: empty */

void *idmap_get(const idmap *m, uint64_t key);        /* NULL: absent */
int idmap_put(idmap *m, uint64_t key, void *val);     /* replaces; 0 if out of memory */
void *idmap_del(idmap *m, uint64_t key);              /* the value removed, or NULL */
void idmap_free(idmap *m);                            /* the table, not the values */
#endif
