/* A queue of encoded values shared by every state of the process that
 * holds it: the runtime under futures.Queue.  No Lua here.
 *
 * A queue_t lives in a shared blob (msg.h): its reference count is the
 * blob's, so a message that carries the queue keeps it alive, and its id
 * (the blob's) is unique in the process.  The values sit in a ring of
 * slots (a small message inline, a larger one boxed), between two
 * counters: putters advance `tail` under put_mu, getters `head` under
 * get_mu, so a producer and a consumer on two cores share no lock and
 * only the lines they hand each other (see queue.c).  Parties that wait
 * link a watch node (under wait_mu); a put notifies one waiting getter, a
 * get one waiting putter, a close all of them, each at most once until it
 * looks again.
 *
 * Lock order: put_mu, then get_mu (a put that grows the ring), then
 * wait_mu, then an owner's lock (notify runs with wait_mu held and may
 * post to or signal an owner).  A blocked party's readiness check runs
 * under its owner's lock and so must not take the queue's: it reads the
 * atomics (queue_can_get / queue_can_put) and then retries.
 */
#ifndef FUTURES_QUEUE_H
#define FUTURES_QUEUE_H
#include <pthread.h>
#include <stdatomic.h>
#include "msg.h"

typedef struct queue_watch queue_watch;
struct queue_watch {
  queue_watch *prev, *next;        /* under wait_mu */
  int linked;                      /* the waiting party's own: only it links or unlinks */
  void (*notify)(queue_watch *w);  /* with wait_mu held; never blocks */
  atomic_int notified;             /* written under wait_mu: woken, has not looked again */
  int getting;                     /* under wait_mu: linked as a getter (else a putter) */
};

#define QUEUE_SLOT_INLINE 20   /* a message of no blobs and this many bytes: in the slot */

typedef struct queue_slot {
  tr_msg *box;   /* NULL: the message is the len bytes of inl */
  uint32_t len;
  unsigned char inl[QUEUE_SLOT_INLINE];
} queue_slot;

/* Each side's lock, and each counter, on lines of their own: the other
 * side polls the counter, and must not steal the lock's line while it
 * does; nor may a neighbouring allocation share a line with them (pads:
 * blobs are only 16-byte aligned). */
typedef struct queue {
  char pad0[64];                   /* from the blob's header and whatever is before it */
  pthread_mutex_t put_mu;
  uint64_t head_seen;              /* under put_mu: head as last read (<= head) */
  char pad1[64];
  atomic_uint_least64_t tail;      /* values ever put; written under put_mu */
  char pad2[64];
  pthread_mutex_t get_mu;
  uint64_t tail_seen;              /* under get_mu: tail as last read (<= tail) */
  char pad3[64];
  atomic_uint_least64_t head;      /* values ever taken; written under get_mu */
  char pad4[64];
  queue_slot *ring;                /* cap slots; read under either lock, changed under both */
  uint64_t cap;                    /* a power of two */
  size_t maxsize;                  /* 0: unbounded */
  atomic_int closed;               /* set under put_mu */
  atomic_int ngetters, nputters;   /* linked watch nodes; written under wait_mu */
  pthread_mutex_t wait_mu;
  queue_watch getters, putters;    /* under wait_mu: circular lists, these are the heads */
  char pad5[64];                   /* from whatever is after it */
} queue_t;

enum { QUEUE_OK, QUEUE_WAIT, QUEUE_CLOSED, QUEUE_NOMEM };

/* A new queue in a new blob of `kind` (whose destroy must call
 * queue_destroy); NULL if out of memory. */
tr_blob *queue_new(const tr_kind *kind, size_t maxsize);
void queue_destroy(tr_blob *b);
static inline queue_t *queue_of(tr_blob *b) { return TR_BLOB_OBJ(b); }

/* Moves m's contents into the queue (m is left empty): QUEUE_OK;
 * QUEUE_WAIT if full (w, if given, is then linked as a putter);
 * QUEUE_CLOSED; QUEUE_NOMEM (m untouched).  force: never QUEUE_WAIT (a
 * value another process's put already handed over). */
int queue_put(queue_t *q, tr_msg *m, queue_watch *w, int force);
/* Moves the oldest value into out (empty on entry): QUEUE_OK; QUEUE_WAIT
 * if empty (w linked as a getter); QUEUE_CLOSED once closed and empty. */
int queue_get(queue_t *q, tr_msg *out, queue_watch *w);
/* Unlinks w (harmless if not linked); a node that was notified and goes
 * without looking passes the wake-up on. */
void queue_unwatch(queue_t *q, queue_watch *w);
void queue_close(queue_t *q);

static inline size_t queue_len(queue_t *q) {
  uint64_t h = atomic_load(&q->head);   /* first: the tail read after is not behind it */
  return (size_t)(atomic_load(&q->tail) - h);
}
static inline int queue_is_closed(queue_t *q) { return atomic_load(&q->closed); }
/* Lock-free looks, for a readiness check: might a get / put go through? */
static inline int queue_can_get(queue_t *q) { return queue_len(q) > 0 || queue_is_closed(q); }
static inline int queue_can_put(queue_t *q) {
  return !q->maxsize || queue_len(q) < q->maxsize || queue_is_closed(q);
}

/* n pauses of a spinning party, which let the other hyperthread run. */
static inline void queue_relax(unsigned n) {
  while (n--) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
  }
}

/* Queues alive in the process (a test hook counts leaks with it). */
long queue_live(void);
#endif
