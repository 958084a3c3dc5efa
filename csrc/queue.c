/* The queue runtime: a FIFO of messages under one lock, with the watch
 * nodes of the parties waiting on it.  See queue.h (the lock order).
 *
 * Wake-ups are counted, not broadcast: a put wakes the first getter not
 * woken yet, a get that makes room the first such putter, so a consumer
 * that is already awake costs a producer no signal, and a burst of puts
 * while the consumer gets going wakes it once.  A woken party that leaves
 * without looking (a timeout, Ctrl-C) passes its wake-up on.
 */
#include <stdlib.h>
#include "clock.h"
#include "queue.h"

#define SPARE_MAX 64   /* items kept for reuse: a stream allocates none */

static atomic_long live;

long queue_live(void) { return atomic_load(&live); }

static void list_init(queue_watch *h) { h->prev = h->next = h; }

static void link_tail(queue_watch *h, queue_watch *w) {
  w->next = h;
  w->prev = h->prev;
  h->prev->next = w;
  h->prev = w;
}

static void unlink_node(queue_watch *w) {
  w->prev->next = w->next;
  w->next->prev = w->prev;
  w->next = w->prev = NULL;
}

/* Wakes the first node of h not woken yet; with q->mu held. */
static void wake_one(queue_watch *h) {
  for (queue_watch *w = h->next; w != h; w = w->next) {
    if (w->notified) continue;
    w->notified = 1;
    w->notify(w);
    return;
  }
}

static void wake_all(queue_watch *h) {
  for (queue_watch *w = h->next; w != h; w = w->next) {
    w->notified = 1;
    w->notify(w);
  }
}

/* The queue's lock is held for a few dozen instructions, by parties that
 * stream on two cores: waiting for it in the kernel (a futex wait and a
 * wake, microseconds) costs far more than a bounded spin. */
#define LOCK_SPINS 1000

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static void lock(queue_t *q) {
  for (int i = 0, n = 1; i < LOCK_SPINS; i += n, n = n < 64 ? 2 * n : n) {
    if (pthread_mutex_trylock(&q->mu) == 0) return;
    for (int k = 0; k < n; k++) cpu_relax();
  }
  pthread_mutex_lock(&q->mu);
}

static int has_room(queue_t *q) { return !q->maxsize || atomic_load(&q->count) < q->maxsize; }

tr_blob *queue_new(const tr_kind *kind, size_t maxsize) {
  tr_blob *b = tr_blob_new_obj(kind, sizeof(queue_t));
  if (!b) return NULL;
  queue_t *q = queue_of(b);
  clk_mutex_init(&q->mu);
  list_init(&q->getters);
  list_init(&q->putters);
  atomic_init(&q->count, 0);
  atomic_init(&q->closed, 0);
  q->maxsize = maxsize;
  atomic_fetch_add(&live, 1);
  return b;
}

static void free_items(queue_item *it) {
  while (it) {
    queue_item *next = it->next;
    msg_free(&it->msg);
    free(it);
    it = next;
  }
}

/* The last reference went: nobody waits on it any more. */
void queue_destroy(tr_blob *b) {
  queue_t *q = queue_of(b);
  /* Items may hold blobs of other queues; freeing them may destroy those. */
  free_items(q->head);
  free_items(q->spare);
  pthread_mutex_destroy(&q->mu);
  atomic_fetch_sub(&live, 1);
}

static void watch_add(queue_watch *h, queue_watch *w) {
  if (!w) return;
  w->notified = 0;   /* it looks again from now */
  if (!w->next) link_tail(h, w);
}

static void watch_done(queue_watch *w) {
  if (w && w->next) unlink_node(w);
}

int queue_put(queue_t *q, tr_msg *m, queue_watch *w, int force) {
  lock(q);
  if (atomic_load(&q->closed)) {
    watch_done(w);
    pthread_mutex_unlock(&q->mu);
    return QUEUE_CLOSED;
  }
  if (!force && !has_room(q)) {
    watch_add(&q->putters, w);
    pthread_mutex_unlock(&q->mu);
    return QUEUE_WAIT;
  }
  queue_item *it = q->spare;
  if (it) {
    q->spare = it->next;
    q->nspare--;
  } else if ((it = malloc(sizeof *it))) {
    msg_init(&it->msg);
  } else {
    pthread_mutex_unlock(&q->mu);
    return QUEUE_NOMEM;
  }
  watch_done(w);
  msg_swap(&it->msg, m);
  it->next = NULL;
  if (q->tail) q->tail->next = it; else q->head = it;
  q->tail = it;
  atomic_store_explicit(&q->count, atomic_load_explicit(&q->count, memory_order_relaxed) + 1,
                        memory_order_release);
  wake_one(&q->getters);
  pthread_mutex_unlock(&q->mu);
  msg_free(m);   /* what the reused item held before (normally nothing) */
  return QUEUE_OK;
}

int queue_get(queue_t *q, tr_msg *out, queue_watch *w) {
  lock(q);
  queue_item *it = q->head;
  if (!it) {
    int closed = atomic_load(&q->closed);
    if (closed) watch_done(w);
    else watch_add(&q->getters, w);
    pthread_mutex_unlock(&q->mu);
    return closed ? QUEUE_CLOSED : QUEUE_WAIT;
  }
  watch_done(w);
  q->head = it->next;
  if (!q->head) q->tail = NULL;
  atomic_store_explicit(&q->count, atomic_load_explicit(&q->count, memory_order_relaxed) - 1,
                        memory_order_release);
  msg_swap(&it->msg, out);   /* out was empty: the item is empty now */
  if (q->nspare < SPARE_MAX) {
    it->next = q->spare;
    q->spare = it;
    q->nspare++;
    it = NULL;
  }
  wake_one(&q->putters);
  pthread_mutex_unlock(&q->mu);
  if (it) { msg_free(&it->msg); free(it); }
  return QUEUE_OK;
}

void queue_unwatch(queue_t *q, queue_watch *w) {
  if (!w->next) return;   /* only the waiting party links or unlinks it */
  pthread_mutex_lock(&q->mu);
  if (w->next) {
    int passed = w->notified;
    unlink_node(w);
    if (passed && (q->head || atomic_load(&q->closed))) wake_one(&q->getters);
    if (passed && has_room(q)) wake_one(&q->putters);
  }
  pthread_mutex_unlock(&q->mu);
}

void queue_close(queue_t *q) {
  pthread_mutex_lock(&q->mu);
  if (!atomic_load(&q->closed)) {
    atomic_store(&q->closed, 1);
    wake_all(&q->getters);
    wake_all(&q->putters);
  }
  pthread_mutex_unlock(&q->mu);
}
