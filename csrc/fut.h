/* The C future: what the owning state, the executor's queue and the
 * worker running a call share.  See fut.c for the design. */
#ifndef FUTURES_FUT_H
#define FUTURES_FUT_H
#include <stdatomic.h>
#include "fifo.h"
#include "msg.h"
#include "outcome.h"
#include "owner.h"

enum { F_PENDING, F_RUNNING, F_CANCELLED, F_FINISHED, F_FAILED };
static inline int fut_done(int st) { return st >= F_CANCELLED; }


/* One registration of a watcher on a future: an intrusive node that the
 * future's list edits (under the future's lock) and the watcher owns.
 * On completion the future unlinks it and calls notify, still locked. */
typedef struct fut_watch {
  struct fut_watch *prev, *next;
  void (*notify)(struct fut_watch *w);
  int linked;
} fut_watch;

struct fut;

/* What runs a future, as its cancel sees it: told to stop a call that was
 * cancelled (or timed out) while running.  Set before the future starts. */
typedef struct fut_stopper {
  void (*stop)(struct fut *f);   /* any thread, no lock held; f is done */
  int flags;                     /* FUT_STOP_* */
} fut_stopper;

/* cancel() without interrupt stops it too. */
#define FUT_STOP_PLAIN 1
/* The stopper is the `s` of a fut_holder: once a stop is decided, under
 * the future's lock and while f is still RUNNING, hold(f) takes what
 * stop() needs (a reference on stop_arg), since the worker may let go of
 * it as soon as the lock is released; stop() then drops it. */
#define FUT_STOP_HOLD 2
typedef struct fut_holder {
  fut_stopper s;
  void (*hold)(struct fut *f);
} fut_holder;

typedef struct fut {
  atomic_int refs;
  atomic_int state;
  int outcome;             /* OUT_*, valid once done */
  int broken_kind;         /* with OUT_BROKEN: 0 threads, 1 processes */
  fut_watch *watchers;     /* under the future's lock */
  owner_t *cb_owner;       /* set once done-callbacks are added; holds a ref */
  owner_job cbjob;         /* posted to cb_owner on completion */
  fifo_node qlink;         /* an executor's queue edits it */
  const fut_stopper *stopper;  /* NULL: a running call cannot be stopped */
  void *stop_arg;          /* the stopper's */
  char *traceback;         /* with OUT_ERROR, malloc'd */
  tr_msg msg;              /* the call until it starts, then the outcome */
} fut_t;

fut_t *fut_new(void);                /* PENDING, refs 1; NULL if no memory */
void fut_ref(fut_t *f);
void fut_unref(fut_t *f);
void fut_lock(fut_t *f);
void fut_unlock(fut_t *f);

/* PENDING -> RUNNING; returns 0 if the future was cancelled meanwhile. */
int fut_set_running(fut_t *f);
/* The same, setting f's stopper and stop_arg under the lock first. */
int fut_set_running_stoppable(fut_t *f, const fut_stopper *s, void *arg);
/* PENDING -> CANCELLED, or RUNNING -> CANCELLED when a stopper can stop
 * the call (interrupt, or a plain stopper) and then tells it to; returns
 * 1 if now (or already) cancelled. */
int fut_cancel(fut_t *f, int interrupt);
/* RUNNING (or PENDING) -> FINISHED/FAILED with msg's contents (swapped in),
 * outcome and traceback (taken over).  Notifies the watchers and posts the
 * callback job.  Returns 0 if the future was already done. */
int fut_complete(fut_t *f, int outcome, tr_msg *msg, char *traceback);
/* Fails a future with a string message of kind OUT_BROKEN/OUT_TRANSFER. */
void fut_fail_msg(fut_t *f, int outcome, const char *text);
/* RUNNING -> FAILED with outcome OUT_TIMEOUT, then tells its stopper (if
 * any) to stop the call, as fut_cancel does.  f->msg is left alone: the
 * running call's, freed by its worker or with f.  Returns 0 if the future
 * was not running. */
int fut_timeout(fut_t *f);

/* f's state, once whatever its completion posts is posted: a state that
 * sees it done finds its callbacks due.  (The state is stored, then the
 * job posted, both under the future's lock: taking it once waits.) */
int fut_settled_state(fut_t *f);

/* Links w to f, or returns 0 if f is done already (w is left unlinked). */
int fut_watch_add(fut_t *f, fut_watch *w);
void fut_watch_remove(fut_t *f, fut_watch *w);   /* if still linked */

/* Has f post its callback job (ops) to o once it completes; returns 0,
 * arranging nothing, if it is done already. */
int fut_on_done(fut_t *f, owner_t *o, const owner_job_ops *ops);
#endif
