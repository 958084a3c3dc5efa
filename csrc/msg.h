/* A message: the encoded bytes of some Lua values, plus the code blobs that
 * the functions among them refer to, and the varints both the codec and
 * the pipe framing write.  Messages are plain C memory, so they
 * can be handed between threads and written to pipes; they are never moved
 * by value (small ones keep their bytes inline). */
#ifndef FUTURES_MSG_H
#define FUTURES_MSG_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct lua_State;
typedef struct tr_blob tr_blob;

/* What a blob that is not code holds: a shared object (a queue) that
 * crosses by reference.  Its refcount is the blob's, so a message that
 * names it keeps it alive until the message is freed or decoded. */
typedef struct tr_kind {
  const char *name;                     /* for error messages: "queue" */
  int threads;                          /* may cross to this process's thread workers? */
  void (*destroy)(tr_blob *b);          /* the last reference went: free what obj holds */
  int (*push)(struct lua_State *L, tr_blob *b);   /* the receiver's Lua value; 0 with no push on OOM */
  uint64_t (*wire_id)(tr_blob *b);      /* its id on the pipes: the parent process's */
  /* An array in a worker's ring (slabring.h): its slots, wire_id its
   * position.  NULL for a shared object. */
  uint64_t (*wire_slots)(tr_blob *b);
} tr_kind;

/* The dumped bytecode of one Lua function prototype, or the encoded bytes
 * of a constant (futures.constant), shared read-only by every message that
 * sends it (kind NULL); or a shared object (kind set, the object in
 * code[], len its size).  `id` is unique within this process and never
 * reused, so receivers may cache what they loaded from it by id.  A
 * constant's blob lists the blobs its bytes refer to (deps, each ref'd): a
 * message that sends it sends those too. */
struct tr_blob {
  atomic_int refs;
  uint64_t id;
  struct tr_blob **deps;
  int ndeps;
  size_t len;
  const tr_kind *kind;
  _Alignas(16) char code[];
};
#define TR_BLOB_OBJ(b) ((void *)(b)->code)
#define TR_OBJ_BLOB(p) ((tr_blob *)((char *)(p) - offsetof(tr_blob, code)))

tr_blob *tr_blob_new(const char *code, size_t len);  /* NULL if out of memory */
/* A zeroed shared object of `size` bytes with one reference; NULL on OOM. */
tr_blob *tr_blob_new_obj(const tr_kind *kind, size_t size);
void tr_blob_ref(tr_blob *b);
void tr_blob_unref(tr_blob *b);
/* Gives b (which has none yet, and is not shared yet) refs to n blobs as
 * its deps; 0 if out of memory. */
int tr_blob_set_deps(tr_blob *b, tr_blob *const *deps, int n);

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
/* msg_free, with no call for a message that holds only inline bytes (a
 * queue's scalar on every put and get). */
static inline void msg_clear(tr_msg *m) {
  if (m->nblobs || m->data != m->inl || m->blobs != m->inlblobs) msg_free(m);
  else m->len = 0;
}
/* Room for `extra` more bytes; 0 if out of memory.  Inline: the encoder
 * asks before every value, and there is room nearly always. */
int msg_grow(tr_msg *m, size_t extra);
static inline int msg_reserve(tr_msg *m, size_t extra) {
  return m->cap - m->len >= extra || msg_grow(m, extra);
}
int msg_add_blob(tr_msg *m, tr_blob *b);    /* index, or -1; takes a ref */
void msg_swap(tr_msg *a, tr_msg *b);        /* exchange contents */

static inline void msg_put(tr_msg *m, const void *p, size_t n) {
  /* caller has reserved */
  memcpy(m->data + m->len, p, n);
  m->len += n;
}

/* Varints (7 bits a byte, low first), for the codec and the pipe framing.
 * Inline: the decoder reads one per integer of an array. */
/* Writes v at d, which has room for 10 bytes; returns the end. */
static inline unsigned char *tr_varint_at(unsigned char *d, uint64_t v) {
  while (v >= 0x80) { *d++ = (unsigned char)(v | 0x80); v >>= 7; }
  *d++ = (unsigned char)v;
  return d;
}

static inline int tr_put_varint(tr_msg *m, uint64_t v) {
  if (!msg_reserve(m, 10)) return 0;
  m->len = (size_t)(tr_varint_at(m->data + m->len, v) - m->data);
  return 1;
}

/* Reads one at *p, never past end; 0 if truncated or longer than 10 bytes. */
static inline int tr_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 70 && *p < end; shift += 7) {
    unsigned char c = *(*p)++;
    r |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) { *v = r; return 1; }
  }
  return 0;
}
#endif
