/* A queue of encoded values shared by every state of the process that
 * holds it: the runtime under futures.Queue.  No Lua here.
 *
 * A queue_t lives in a shared blob (msg.h): its reference count is the
 * blob's, so a message that carries the queue keeps it alive, and its id
 * (the blob's) is unique in the process.  Each item is one allocation
 * holding a message (small values inline).  Parties that wait link a watch
 * node; a put notifies one waiting getter, a get one waiting putter, a
 * close all of them, each at most once until it looks again.
 *
 * Lock order: a queue's lock, then an owner's lock (notify runs with the
 * queue locked and may post to or signal an owner).  A blocked party's
 * readiness check runs under its owner's lock and so must not take the
 * queue's: it reads the atomics (queue_can_get / queue_can_put) and then
 * retries under the queue's lock.
 */
#ifndef FUTURES_QUEUE_H
#define FUTURES_QUEUE_H
#include <pthread.h>
#include <stdatomic.h>
#include "msg.h"

typedef struct queue_watch queue_watch;
struct queue_watch {
  queue_watch *prev, *next;        /* under the queue's lock; next NULL: not linked */
  void (*notify)(queue_watch *w);  /* with the queue's lock held; never blocks */
  int notified;                    /* under the queue's lock: woken, has not looked again */
};

typedef struct queue_item { struct queue_item *next; tr_msg msg; } queue_item;

typedef struct queue {
  pthread_mutex_t mu;
  queue_item *head, *tail;         /* under mu */
  queue_item *spare;               /* under mu: freed items kept for reuse */
  int nspare;
  queue_watch getters, putters;    /* under mu: circular lists, these are the heads */
  atomic_size_t count;             /* written under mu, read anywhere */
  atomic_int closed;
  size_t maxsize;                  /* 0: unbounded */
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

static inline size_t queue_len(queue_t *q) { return atomic_load_explicit(&q->count, memory_order_relaxed); }
static inline int queue_is_closed(queue_t *q) { return atomic_load(&q->closed); }
/* Lock-free looks, for a readiness check: might a get / put go through? */
static inline int queue_can_get(queue_t *q) { return queue_len(q) > 0 || queue_is_closed(q); }
static inline int queue_can_put(queue_t *q) {
  return !q->maxsize || queue_len(q) < q->maxsize || queue_is_closed(q);
}

/* Queues alive in the process (a test hook counts leaks with it). */
long queue_live(void);
#endif
