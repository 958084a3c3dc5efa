/* Slabs: big arrays of numbers crossing between threads as one block. */
#include <stdlib.h>
#include <string.h>
#include "pages.h"
#include "slab.h"

typedef struct slab {
  _Atomic(ap_slot *) slots;   /* NULL once a receiver took them */
  size_t n;
} slab;

static void slab_destroy(tr_blob *b) { free(atomic_load(&((slab *)TR_BLOB_OBJ(b))->slots)); }

/* A slab is never a shared object: a message naming it as one is malformed. */
static int slab_push(struct lua_State *L, tr_blob *b) { (void)L, (void)b; return 0; }

static uint64_t slab_wire_id(tr_blob *b) { return b->id; }

static const tr_kind slab_kind = {"array", 1, slab_destroy, slab_push, slab_wire_id, NULL};

/* The type tags a slab may hold: numbers, booleans and nils. */
static const unsigned char plain[256] = {
  [AP_INT] = 1, [AP_FLT] = 1, [AP_FALSE] = 1, [AP_TRUE] = 1,
  [0x00] = 1, [0x10] = 1, [0x20] = 1, [0x30] = 1,   /* nil, empty, absent key (AP_ISNIL) */
};

int slab_copy_plain(ap_slot *restrict d, const ap_slot *restrict s, size_t n) {
  unsigned ok = 1;
  for (size_t i = 0; i < n; i++) {   /* one pass: the check rides on the copy */
    d[i] = s[i];
    ok &= plain[d[i].tt];
  }
  return ok;
}

tr_blob *slab_of(ap_slot *s, size_t n) {
  tr_blob *b = tr_blob_new_obj(&slab_kind, sizeof(slab));
  if (!b) { free(s); return NULL; }
  slab *x = TR_BLOB_OBJ(b);
  atomic_init(&x->slots, s);
  x->n = n;
  return b;
}

ap_slot *slab_alloc(size_t n) {
  ap_slot *s = malloc(n * sizeof *s);
  if (s) pages_prefault(s, n * sizeof *s);
  return s;
}

static tr_blob *local_make(void *ctx, const ap_slot *a, size_t n) {
  (void)ctx;
  ap_slot *s = slab_alloc(n);
  if (s && slab_copy_plain(s, a, n)) return slab_of(s, n);
  free(s);
  return NULL;
}

const slab_maker slab_local = {local_make, NULL};

int slab_is(const tr_blob *b) { return b->kind == &slab_kind; }

size_t slab_len(const tr_blob *b) { return ((const slab *)TR_BLOB_OBJ((tr_blob *)b))->n; }

const ap_slot *slab_slots(tr_blob *b) { return atomic_load(&((slab *)TR_BLOB_OBJ(b))->slots); }

ap_slot *slab_take(tr_blob *b) { return atomic_exchange(&((slab *)TR_BLOB_OBJ(b))->slots, NULL); }
