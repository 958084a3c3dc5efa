/* A message: the encoded bytes of some Lua values, plus the code blobs that
 * the functions among them refer to.  Messages are plain C memory, so they
 * can be handed between threads and written to pipes; they are never moved
 * by value (small ones keep their bytes inline). */
#ifndef FUTURES_MSG_H
#define FUTURES_MSG_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The dumped bytecode of one Lua function prototype, shared read-only by
 * every message that sends it.  `id` is unique within this process and
 * never reused, so receivers may cache what they loaded from it by id. */
typedef struct tr_blob {
  atomic_int refs;
  uint64_t id;
  size_t len;
  char code[];
} tr_blob;

tr_blob *tr_blob_new(const char *code, size_t len);  /* NULL if out of memory */
void tr_blob_ref(tr_blob *b);
void tr_blob_unref(tr_blob *b);

#define MSG_INLINE 24   /* a tiny call or result: no allocation */
#define MSG_INLINE_BLOBS 1

typedef struct tr_msg {
  unsigned char *data;
  size_t len, cap;
  tr_blob **blobs;
  int nblobs, capblobs;
  unsigned char inl[MSG_INLINE];
  tr_blob *inlblobs[MSG_INLINE_BLOBS];
} tr_msg;

void msg_init(tr_msg *m);
void msg_free(tr_msg *m);               /* back to the empty state */
int msg_reserve(tr_msg *m, size_t extra);   /* 0 if out of memory */
int msg_add_blob(tr_msg *m, tr_blob *b);    /* index, or -1; takes a ref */
void msg_swap(tr_msg *a, tr_msg *b);        /* exchange contents */

static inline void msg_put(tr_msg *m, const void *p, size_t n) {
  /* caller has reserved */
  memcpy(m->data + m->len, p, n);
  m->len += n;
}
#endif
