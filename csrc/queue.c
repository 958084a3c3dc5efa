/* The queue runtime: a ring of messages between two locks, with the
 * watch nodes of the parties waiting on it.  See queue.h (the lock order).
 *
 * Two sides: putters write slot tail % cap and then advance tail (under
 * put_mu), getters read slot head % cap and then advance head (under
 * get_mu); each side reads the other's counter only when its own copy
 * says the ring is full (empty), so a producer and a consumer streaming
 * on two cores exchange the slots' lines and the counter that tells a
 * slot is ready, and never a lock.  Every put is visible to every getter
 * once tail moves; nothing is held back on either side.
 *
 * Wake-ups are counted, not broadcast: a put wakes the first getter not
 * woken yet, a get the first such putter, so a party that is already
 * awake costs the other no signal.  A side looks for waiters with a
 * seq_cst fence after it publishes its counter; a party that links its
 * node bumps the count of waiters and then looks at the counters again
 * (the same fence): one of the two sees the other, so no wake-up is lost.
 * A woken party that leaves without looking passes its wake-up on.
 */
#include <stdlib.h>
#include "clock.h"
#include "queue.h"

#define RING_MIN 16     /* slots of a new ring */
#define RING_KEEP 1024  /* an emptied ring larger than this shrinks back to it */
/* The locks are held for a few dozen instructions: waiting for one in the
 * kernel (a futex wait and a wake, microseconds) costs far more than a
 * bounded spin. */
#define LOCK_SPINS 1000

_Static_assert(QUEUE_SLOT_INLINE <= MSG_INLINE, "a get copies a slot into an empty message");

static atomic_long live;

long queue_live(void) { return atomic_load(&live); }

static void lock(pthread_mutex_t *mu) {
  for (int i = 0, n = 1; i < LOCK_SPINS; i += n, n = n < 64 ? 2 * n : n) {
    if (pthread_mutex_trylock(mu) == 0) return;
    queue_relax((unsigned)n);
  }
  pthread_mutex_lock(mu);
}

static void list_init(queue_watch *h) { h->prev = h->next = h; }

static void link_tail(queue_watch *h, queue_watch *w) {
  w->next = h;
  w->prev = h->prev;
  h->prev->next = w;
  h->prev = w;
  w->linked = 1;
}

static void unlink_node(queue_watch *w) {
  w->prev->next = w->next;
  w->next->prev = w->prev;
  w->next = w->prev = NULL;
  w->linked = 0;
}

/* Wakes the first node of h not woken yet; with wait_mu held. */
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

/* After a side published its counter: wakes one waiter of the other side,
 * if any is linked (the fence pairs with link_waiter's). */
static void wake_other(queue_t *q, atomic_int *n, queue_watch *h) {
  atomic_thread_fence(memory_order_seq_cst);
  if (!atomic_load_explicit(n, memory_order_relaxed)) return;
  lock(&q->wait_mu);
  wake_one(h);
  pthread_mutex_unlock(&q->wait_mu);
}

static int has_room(queue_t *q) { return !q->maxsize || queue_len(q) < q->maxsize; }

/* Slots on line boundaries: a slot that straddled two lines would cost
 * two handoffs. */
static queue_slot *ring_alloc(uint64_t cap) { return aligned_alloc(64, cap * sizeof(queue_slot)); }

tr_blob *queue_new(const tr_kind *kind, size_t maxsize) {
  queue_slot *ring = ring_alloc(RING_MIN);
  tr_blob *b = ring ? tr_blob_new_obj(kind, sizeof(queue_t)) : NULL;
  if (!b) {
    free(ring);
    return NULL;
  }
  queue_t *q = queue_of(b);
  q->ring = ring;
  q->cap = RING_MIN;
  clk_mutex_init(&q->put_mu);
  clk_mutex_init(&q->get_mu);
  clk_mutex_init(&q->wait_mu);
  list_init(&q->getters);
  list_init(&q->putters);
  atomic_init(&q->tail, 0);
  atomic_init(&q->head, 0);
  atomic_init(&q->closed, 0);
  atomic_init(&q->ngetters, 0);
  atomic_init(&q->nputters, 0);
  q->maxsize = maxsize;
  atomic_fetch_add(&live, 1);
  return b;
}

static void slot_free(queue_slot *s) {
  if (!s->box) return;
  msg_free(s->box);
  free(s->box);
}

/* The last reference went: nobody waits on it any more. */
void queue_destroy(tr_blob *b) {
  queue_t *q = queue_of(b);
  /* Values may hold blobs of other queues; freeing them may destroy those. */
  for (uint64_t i = atomic_load(&q->head), t = atomic_load(&q->tail); i != t; i++)
    slot_free(&q->ring[i & (q->cap - 1)]);
  free(q->ring);
  pthread_mutex_destroy(&q->put_mu);
  pthread_mutex_destroy(&q->get_mu);
  pthread_mutex_destroy(&q->wait_mu);
  atomic_fetch_sub(&live, 1);
}

/* Links w (if given) as a waiter of h, counted in n, and then reports
 * whether the other side moved meanwhile (`moved` reads it after the
 * fence); if so w is unlinked again and the caller goes on. */
static int link_waiter(queue_t *q, queue_watch *h, atomic_int *n, queue_watch *w,
                       int (*moved)(queue_t *q)) {
  if (!w) return moved(q);
  lock(&q->wait_mu);
  w->notified = 0;   /* it looks again from now */
  if (!w->linked) {
    link_tail(h, w);
    w->getting = h == &q->getters;
    atomic_fetch_add(n, 1);
  }
  pthread_mutex_unlock(&q->wait_mu);
  atomic_thread_fence(memory_order_seq_cst);
  if (!moved(q)) return 0;
  lock(&q->wait_mu);
  unlink_node(w);
  atomic_fetch_sub(n, 1);
  pthread_mutex_unlock(&q->wait_mu);
  return 1;
}

/* A node linked by an earlier try that did not go through. */
static void watch_done(queue_t *q, atomic_int *n, queue_watch *w) {
  if (!w || !w->linked) return;
  lock(&q->wait_mu);
  unlink_node(w);
  atomic_fetch_sub(n, 1);
  pthread_mutex_unlock(&q->wait_mu);
}

static int room_now(queue_t *q) {
  q->head_seen = atomic_load(&q->head);
  return atomic_load(&q->closed) || atomic_load_explicit(&q->tail, memory_order_relaxed) - q->head_seen < q->maxsize;
}

/* closed first: it is set after the last put, so a tail read after it
 * is the last. */
static int value_now(queue_t *q) {
  int closed = atomic_load(&q->closed);
  q->tail_seen = atomic_load(&q->tail);
  return atomic_load_explicit(&q->head, memory_order_relaxed) != q->tail_seen || closed;
}

/* Resizes the ring to cap slots (a power of two holding every value),
 * with both locks held; 0 if out of memory. */
static int resize(queue_t *q, uint64_t cap) {
  queue_slot *r = ring_alloc(cap);
  if (!r) return 0;
  uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
  uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
  for (uint64_t i = h; i != t; i++) r[i & (cap - 1)] = q->ring[i & (q->cap - 1)];
  free(q->ring);
  q->ring = r;
  q->cap = cap;
  return 1;
}

int queue_put(queue_t *q, tr_msg *m, queue_watch *w, int force) {
  lock(&q->put_mu);
  for (;;) {
    if (atomic_load(&q->closed)) {
      pthread_mutex_unlock(&q->put_mu);
      watch_done(q, &q->nputters, w);
      return QUEUE_CLOSED;
    }
    uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (force || !q->maxsize || t - q->head_seen < q->maxsize) break;
    if (room_now(q)) continue;
    if (!link_waiter(q, &q->putters, &q->nputters, w, room_now)) {
      pthread_mutex_unlock(&q->put_mu);
      return QUEUE_WAIT;
    }
  }
  uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
  int grow = t - q->head_seen >= q->cap && t - (q->head_seen = atomic_load(&q->head)) >= q->cap;
  tr_msg *box = NULL;
  if (m->nblobs || m->len > QUEUE_SLOT_INLINE) {
    if (!(box = malloc(sizeof *box))) goto nomem;
    msg_init(box);
  }
  if (grow) {
    lock(&q->get_mu);
    int ok = resize(q, 2 * q->cap);
    pthread_mutex_unlock(&q->get_mu);
    if (!ok) { free(box); goto nomem; }
  }
  queue_slot *s = &q->ring[t & (q->cap - 1)];
  s->box = box;
  if (box) {
    msg_swap(box, m);
  } else {
    s->len = (uint32_t)m->len;
    memcpy(s->inl, m->data, m->len);
  }
  atomic_store_explicit(&q->tail, t + 1, memory_order_release);
  pthread_mutex_unlock(&q->put_mu);
  msg_clear(m);
  watch_done(q, &q->nputters, w);
  wake_other(q, &q->ngetters, &q->getters);
  return QUEUE_OK;
nomem:
  pthread_mutex_unlock(&q->put_mu);
  return QUEUE_NOMEM;
}

/* An emptied ring that had grown past RING_KEEP slots goes back to that,
 * if no put is under way (a try: get_mu is held, and put_mu comes first). */
static void maybe_shrink(queue_t *q, uint64_t h) {
  if (q->cap <= RING_KEEP || atomic_load(&q->tail) != h || pthread_mutex_trylock(&q->put_mu)) return;
  if (atomic_load(&q->tail) == h) resize(q, RING_KEEP);   /* on OOM it keeps the big one */
  pthread_mutex_unlock(&q->put_mu);
}

int queue_get(queue_t *q, tr_msg *out, queue_watch *w) {
  lock(&q->get_mu);
  uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
  while (h == q->tail_seen && !value_now(q)) {
    if (!link_waiter(q, &q->getters, &q->ngetters, w, value_now)) {
      pthread_mutex_unlock(&q->get_mu);
      return QUEUE_WAIT;
    }
  }
  if (h == q->tail_seen) {   /* closed (set after the last put), and empty */
    pthread_mutex_unlock(&q->get_mu);
    watch_done(q, &q->ngetters, w);
    return QUEUE_CLOSED;
  }
  queue_slot *s = &q->ring[h & (q->cap - 1)];
  if (s->box) {
    msg_swap(s->box, out);   /* out was empty: the box is empty now */
  } else {
    out->len = s->len;   /* an empty message's inline bytes hold QUEUE_SLOT_INLINE */
    memcpy(out->data, s->inl, s->len);
  }
  tr_msg *box = s->box;
  atomic_store_explicit(&q->head, h + 1, memory_order_release);
  maybe_shrink(q, h + 1);
  pthread_mutex_unlock(&q->get_mu);
  free(box);
  watch_done(q, &q->ngetters, w);
  if (q->maxsize) wake_other(q, &q->nputters, &q->putters);
  return QUEUE_OK;
}

void queue_unwatch(queue_t *q, queue_watch *w) {
  if (!w->linked) return;
  lock(&q->wait_mu);
  int passed = w->notified;
  unlink_node(w);
  atomic_fetch_sub(w->getting ? &q->ngetters : &q->nputters, 1);
  if (passed && queue_can_get(q)) wake_one(&q->getters);
  if (passed && has_room(q)) wake_one(&q->putters);
  pthread_mutex_unlock(&q->wait_mu);
}

void queue_close(queue_t *q) {
  lock(&q->put_mu);
  int was = atomic_exchange(&q->closed, 1);
  pthread_mutex_unlock(&q->put_mu);
  if (was) return;
  lock(&q->wait_mu);
  wake_all(&q->getters);
  wake_all(&q->putters);
  pthread_mutex_unlock(&q->wait_mu);
}
