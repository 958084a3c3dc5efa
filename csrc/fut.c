/* The C future: a refcounted state machine shared between threads.
 *
 * DESIGN
 * A fut_t is shared by the state that owns the Lua Future, the executor's
 * queue and the worker running it; each holds a reference.  Its state moves
 * PENDING -> RUNNING -> FINISHED | FAILED, or PENDING -> CANCELLED, under
 * the future's lock (one of a few striped mutexes: a future costs no mutex
 * of its own).  The state is also an atomic, so readers poll it lock-free.
 *
 * One message slot carries the call until a worker starts it, then the
 * outcome (values, or the error value plus a traceback); the owning state
 * decodes it (future.c).
 *
 * Completion, under the future's lock, unlinks and notifies every watcher
 * (waiter.c) and, if callbacks were asked for, posts the callback job to
 * the owning state (owner.c), holding a reference for the job.  This file
 * knows neither what a watcher does nor what the job runs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fut.h"
#include "transfer.h"

#define NSTRIPES 64
/* Adaptive: the critical sections are a few instructions long. */
static pthread_mutex_t stripes[NSTRIPES] = {[0 ... NSTRIPES - 1] = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP};

static pthread_mutex_t *stripe(fut_t *f) { return &stripes[((uintptr_t)f >> 6) % NSTRIPES]; }
void fut_lock(fut_t *f) { pthread_mutex_lock(stripe(f)); }
void fut_unlock(fut_t *f) { pthread_mutex_unlock(stripe(f)); }

fut_t *fut_new(void) {
  fut_t *f = malloc(sizeof *f);   /* not calloc: glibc's skips the thread cache */
  if (!f) return NULL;
  *f = (fut_t){0};
  atomic_init(&f->refs, 1);
  atomic_init(&f->state, F_PENDING);
  msg_init(&f->msg);
  return f;
}

void fut_ref(fut_t *f) { atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); }

void fut_unref(fut_t *f) {
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
  msg_clear(&f->msg);
  free(f->traceback);
  owner_unref(f->cb_owner);
  free(f);
}

/* With the future locked and its new (done) state stored.  The callback
 * job first: a state woken by a watcher finds it posted. */
static void notify(fut_t *f) {
  if (f->cb_owner) {
    fut_ref(f);   /* the job's; never the last one: the completer holds one */
    if (!owner_post(f->cb_owner, &f->cbjob)) fut_unref(f);
  }
  for (fut_watch *w = f->watchers, *next; w; w = next) {
    next = w->next;
    w->linked = 0;
    w->notify(w);
  }
  f->watchers = NULL;
}

int fut_settled_state(fut_t *f) {
  int st = atomic_load(&f->state);
  if (fut_done(st) && f->cb_owner) { fut_lock(f); fut_unlock(f); }
  return st;
}

int fut_set_running(fut_t *f) {
  fut_lock(f);
  int ok = atomic_load(&f->state) == F_PENDING;
  if (ok) atomic_store(&f->state, F_RUNNING);
  fut_unlock(f);
  return ok;
}

int fut_set_running_stoppable(fut_t *f, const fut_stopper *s, void *arg) {
  fut_lock(f);
  int ok = atomic_load(&f->state) == F_PENDING;
  if (ok) {
    f->stopper = s;
    f->stop_arg = arg;
    atomic_store(&f->state, F_RUNNING);
  }
  fut_unlock(f);
  return ok;
}

/* A running call's future was just made done (locked): whatever stop()
 * needs is held before the worker can finish and let go of it. */
static const fut_stopper *stop_decided(fut_t *f) {
  const fut_stopper *s = f->stopper;
  if (s->flags & FUT_STOP_HOLD) ((const fut_holder *)s)->hold(f);
  return s;
}

int fut_cancel(fut_t *f, int interrupt) {
  fut_lock(f);
  int st = atomic_load(&f->state);
  const fut_stopper *stop = NULL;
  int stopping = st == F_RUNNING && f->stopper && (interrupt || (f->stopper->flags & FUT_STOP_PLAIN));
  if (st == F_PENDING || stopping) {
    if (st == F_PENDING) msg_free(&f->msg);   /* running: the worker's until it completes */
    atomic_store(&f->state, F_CANCELLED);
    notify(f);
    if (stopping) stop = stop_decided(f);
    st = F_CANCELLED;
  }
  fut_unlock(f);
  if (stop) stop->stop(f);
  return st == F_CANCELLED;
}

int fut_timeout(fut_t *f) {
  const fut_stopper *stop = NULL;
  fut_lock(f);
  int running = atomic_load(&f->state) == F_RUNNING;
  if (running) {
    /* f->msg stays the worker's (the call) until it returns: the outcome
     * is the kind alone. */
    f->outcome = OUT_TIMEOUT;
    atomic_store(&f->state, F_FAILED);
    notify(f);
    if (f->stopper) stop = stop_decided(f);
  }
  fut_unlock(f);
  if (stop) stop->stop(f);
  return running;
}

int fut_complete(fut_t *f, int outcome, tr_msg *msg, char *traceback) {
  fut_lock(f);
  if (fut_done(atomic_load(&f->state))) {
    fut_unlock(f);
    free(traceback);
    return 0;
  }
  msg_swap(&f->msg, msg);
  f->outcome = outcome;
  f->traceback = traceback;
  atomic_store(&f->state, (outcome == OUT_VALUES || outcome == OUT_LOCAL) ? F_FINISHED : F_FAILED);
  notify(f);
  fut_unlock(f);
  return 1;
}

void fut_fail_msg(fut_t *f, int outcome, const char *text) {
  tr_msg m;
  msg_init(&m);
  tr_encode_string(&m, text, strlen(text));   /* on OOM: an empty message */
  fut_complete(f, outcome, &m, NULL);
  msg_free(&m);
}

int fut_watch_add(fut_t *f, fut_watch *w) {
  fut_lock(f);
  int pending = !fut_done(atomic_load(&f->state));
  if (pending) {
    w->prev = NULL;
    w->next = f->watchers;
    if (f->watchers) f->watchers->prev = w;
    f->watchers = w;
  }
  w->linked = pending;
  fut_unlock(f);
  return pending;
}

void fut_watch_remove(fut_t *f, fut_watch *w) {
  fut_lock(f);
  if (w->linked) {
    if (w->prev) w->prev->next = w->next; else f->watchers = w->next;
    if (w->next) w->next->prev = w->prev;
    w->linked = 0;
  }
  fut_unlock(f);
}

int fut_on_done(fut_t *f, owner_t *o, const owner_job_ops *ops) {
  fut_lock(f);
  int pending = !fut_done(atomic_load(&f->state));
  if (pending && !f->cb_owner) {
    owner_ref(o);
    f->cbjob.ops = ops;
    f->cb_owner = o;
  }
  fut_unlock(f);
  return pending;
}
