/* Message buffers and shared code blobs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "msg.h"
#include "pages.h"

static atomic_uint_fast64_t next_blob_id = 1;

tr_blob *tr_blob_new(const char *code, size_t len) {
  tr_blob *b = malloc(sizeof *b + len);
  if (!b) return NULL;
  atomic_init(&b->refs, 1);
  b->id = atomic_fetch_add(&next_blob_id, 1);
  b->deps = NULL;
  b->ndeps = 0;
  b->len = len;
  b->kind = NULL;
  memcpy(b->code, code, len);
  return b;
}

tr_blob *tr_blob_new_obj(const tr_kind *kind, size_t size) {
  tr_blob *b = calloc(1, sizeof *b + size);
  if (!b) return NULL;
  atomic_init(&b->refs, 1);
  b->id = atomic_fetch_add(&next_blob_id, 1);
  b->len = size;
  b->kind = kind;
  return b;
}

void tr_blob_ref(tr_blob *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void tr_blob_unref(tr_blob *b) {
  if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    if (b->kind) b->kind->destroy(b);
    for (int i = 0; i < b->ndeps; i++) tr_blob_unref(b->deps[i]);
    free(b->deps);
    free(b);
  }
}

int tr_blob_set_deps(tr_blob *b, tr_blob *const *deps, int n) {
  if (n <= 0) return 1;
  tr_blob **d = malloc((size_t)n * sizeof *d);
  if (!d) return 0;
  for (int i = 0; i < n; i++) {
    tr_blob_ref(deps[i]);
    d[i] = deps[i];
  }
  b->deps = d;
  b->ndeps = n;
  return 1;
}

void msg_init(tr_msg *m) {
  m->data = m->inl;
  m->len = 0;
  m->cap = MSG_INLINE;
  m->blobs = m->inlblobs;
  m->nblobs = 0;
  m->capblobs = MSG_INLINE_BLOBS;
}

void msg_free(tr_msg *m) {
  for (int i = 0; i < m->nblobs; i++) tr_blob_unref(m->blobs[i]);
  if (m->data != m->inl) free(m->data);
  if (m->blobs != m->inlblobs) free(m->blobs);
  msg_init(m);
}

int msg_grow(tr_msg *m, size_t extra) {
  if (extra > SIZE_MAX - m->len) return 0;  /* overflow */
  size_t cap = m->cap <= SIZE_MAX / 2 ? m->cap * 2 : SIZE_MAX;
  if (cap < m->len + extra) cap = m->len + extra;
  unsigned char *d;
  if (m->data == m->inl) {
    d = malloc(cap);
    if (d) memcpy(d, m->inl, m->len);
  } else {
    d = realloc(m->data, cap);
  }
  if (!d) return 0;
  m->data = d;
  m->cap = cap;
  pages_prefault(d + m->len, extra);   /* a big copy comes */
  return 1;
}

int msg_add_blob(tr_msg *m, tr_blob *b) {
  for (int i = 0; i < m->nblobs; i++)
    if (m->blobs[i] == b) return i;
  if (m->nblobs == m->capblobs) {
    int cap = m->capblobs * 2;
    tr_blob **nb = malloc((size_t)cap * sizeof *nb);
    if (!nb) return -1;
    memcpy(nb, m->blobs, (size_t)m->nblobs * sizeof *nb);
    if (m->blobs != m->inlblobs) free(m->blobs);
    m->blobs = nb;
    m->capblobs = cap;
  }
  tr_blob_ref(b);
  m->blobs[m->nblobs] = b;
  return m->nblobs++;
}

/* Inline storage cannot simply be exchanged by pointer. */
void msg_swap(tr_msg *a, tr_msg *b) {
  tr_msg t = *a;
  *a = *b;
  *b = t;
  if (a->data == b->inl) a->data = a->inl;
  if (b->data == a->inl) b->data = b->inl;
  if (a->blobs == b->inlblobs) a->blobs = a->inlblobs;
  if (b->blobs == a->inlblobs) b->blobs = b->inlblobs;
}
