/* Slabs: big arrays of numbers crossing between threads as one block. */
#include <stdlib.h>
#include <string.h>
#include "slab.h"

typedef struct slab {
  _Atomic(ap_slot *) slots;   /* NULL once a receiver took them */
  size_t n;
} slab;

static void slab_destroy(tr_blob *b) { free(atomic_load(&((slab *)TR_BLOB_OBJ(b))->slots)); }

/* A slab is never a shared object: a message naming it as one is malformed. */
static int slab_push(struct lua_State *L, tr_blob *b) { (void)L, (void)b; return 0; }

static uint64_t slab_wire_id(tr_blob *b) { return b->id; }

static const tr_kind slab_kind = {"array", 1, slab_destroy, slab_push, slab_wire_id};

tr_blob *slab_copy(const ap_slot *a, size_t n) {
  if (n == 0 || n > SLAB_MAX) return NULL;
  ap_slot *s = malloc(n * sizeof *s);
  if (!s) return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char tt = a[i].tt;
    if (tt != AP_FLT && tt != AP_INT && tt != AP_TRUE && tt != AP_FALSE && !AP_ISNIL(tt)) {
      free(s);
      return NULL;
    }
  }
  memcpy(s, a, n * sizeof *s);
  tr_blob *b = tr_blob_new_obj(&slab_kind, sizeof(slab));
  if (!b) { free(s); return NULL; }
  slab *x = TR_BLOB_OBJ(b);
  atomic_init(&x->slots, s);
  x->n = n;
  return b;
}

int slab_is(const tr_blob *b) { return b->kind == &slab_kind; }

size_t slab_len(const tr_blob *b) { return ((const slab *)TR_BLOB_OBJ((tr_blob *)b))->n; }

const ap_slot *slab_slots(tr_blob *b) { return atomic_load(&((slab *)TR_BLOB_OBJ(b))->slots); }

ap_slot *slab_take(tr_blob *b) { return atomic_exchange(&((slab *)TR_BLOB_OBJ(b))->slots, NULL); }
