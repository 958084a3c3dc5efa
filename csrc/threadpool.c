/* ThreadPoolExecutor: worker threads, each owning a private lua_State.
 *
 * DESIGN
 * A worker thread creates its state (standard libraries, the creator's
 * package paths, the embedder's hook), runs the initializer, then loops:
 * take a future from the pool queue (pool.c), move it PENDING -> RUNNING
 * (a cancelled one is skipped), decode and run the call in its state, and
 * complete the future with the encoded outcome.  The state is touched by
 * this thread only, and closed by it before it leaves.  An initializer that
 * fails breaks the pool: pending futures fail with BrokenThreadPool.
 * See pool.c for the queue, the locks and who frees what.
 *
 * Stopping a running call (f:cancel(true), call_timeout).  Each worker has
 * a tworker, refcounted (the worker thread holds one reference, each stop
 * in progress another: fut_stopper.hold takes it under the future's lock,
 * while the call still runs).  Its lock `mu` guards `cur`, the future the
 * worker runs now, published before the future turns RUNNING and cleared
 * as soon as the call returns, before it completes.  stop(f) acts only if
 * cur is still f: it arms the stop hook on the worker's state (task.c;
 * lua_sethook from another thread, as lua.c's signal handler does) and
 * sets the stop flag of the state's owner, so a futures.sleep or a wait
 * inside the call ends at once.  The worker, under mu, clears cur, and if
 * a stop came, removes the hook and the flag: a late stop can never reach
 * the worker's next call (cur is another future by then).  A call stuck
 * in C is stopped at its next Lua instruction, once the C code returns.
 *
 * call_timeout: one watchdog thread per pool (started with the pool, only
 * when the option is set) looks at every worker's `cur` and `deadline`
 * and times out the calls that ran too long (fut_timeout: the future
 * fails with TimeoutError, and it is stopped as above).  All calls get the
 * same timeout, so a call started after the watchdog looked ends no
 * earlier than a timeout from then: it sleeps until the earliest deadline
 * it saw, or one timeout, and no worker ever needs to wake it.
 *
 * Locks: the watchdog's lock (its list of workers), then a tworker's mu,
 * then a future's, then an owner's.  No Lua code runs under any of them.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include "lauxlib.h"
#include "clock.h"
#include "pool.h"
#include "threadpool.h"
#include "task.h"
#include "workerstate.h"

typedef struct tworker {
  atomic_int refs;
  pthread_mutex_t mu;
  fut_t *cur;                  /* under mu: the call running, or NULL */
  double deadline;             /* under mu, with cur and call_timeout */
  int stopped;                 /* under mu: cur's stop hook is armed */
  lua_State *L;                /* the worker's state: only while cur is set is it touched by others */
  owner_t *owner;              /* its owner (a reference) */
  struct tworker *prev, *next; /* in the watchdog's list, under its lock */
} tworker;

/* The watchdog of a pool with call_timeout (the pool's backend data). */
typedef struct tdog {
  pthread_mutex_t mu;
  pthread_cond_t cv;           /* CLOCK_MONOTONIC; signalled to quit */
  tworker *workers;            /* under mu */
  double timeout;
  int quit;
  pthread_t thread;
} tdog;

static void tw_ref(tworker *t) { atomic_fetch_add(&t->refs, 1); }

static void tw_unref(tworker *t) {
  if (atomic_fetch_sub(&t->refs, 1) != 1) return;
  owner_unref(t->owner);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

static void hold(fut_t *f) { tw_ref(f->stop_arg); }

static void stop(fut_t *f) {
  tworker *t = f->stop_arg;
  pthread_mutex_lock(&t->mu);
  int now = t->cur == f && !t->stopped;
  if (now) {
    t->stopped = 1;
    task_stop_arm(t->L);
    atomic_store(&t->owner->stop, 1);
  }
  pthread_mutex_unlock(&t->mu);
  if (now) owner_signal(t->owner);   /* a sleep or a wait in the call ends */
  tw_unref(t);
}

static const fut_holder stopper = {{stop, FUT_STOP_HOLD}, hold};

/* The worker's state has an owner from the start, so a stop can reach
 * its waits. */
static int make_owner(lua_State *L) {
  owner_t **o = lua_touserdata(L, 1);
  *o = owner_get(L);
  return 0;
}

static tworker *tw_new(lua_State *L) {
  tworker *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  lua_pushcfunction(L, make_owner);
  lua_pushlightuserdata(L, &t->owner);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    free(t);
    return NULL;
  }
  owner_ref(t->owner);
  atomic_init(&t->refs, 1);
  clk_mutex_init(&t->mu);
  t->L = L;
  return t;
}

static void run_one(tworker *t, fut_t *f, double timeout) {
  pthread_mutex_lock(&t->mu);
  t->cur = f;
  if (timeout > 0) t->deadline = clk_now() + timeout;
  pthread_mutex_unlock(&t->mu);
  int started = fut_set_running_stoppable(f, &stopper.s, t);
  tr_msg out;
  char *tb = NULL;
  msg_init(&out);
  int outcome = started ? task_run(t->L, &f->msg, &out, &tb, 1) : 0;
  pthread_mutex_lock(&t->mu);
  t->cur = NULL;
  if (t->stopped) {
    t->stopped = 0;
    task_stop_disarm(t->L);
    atomic_store(&t->owner->stop, 0);
  }
  pthread_mutex_unlock(&t->mu);
  if (started) {
    msg_free(&f->msg);          /* the call: RUNNING (or stopped), so ours alone */
    fut_complete(f, outcome, &out, tb);   /* a stopped call's outcome is dropped */
  }
  msg_free(&out);
}

static void dog_add(tdog *d, tworker *t) {
  pthread_mutex_lock(&d->mu);
  t->prev = NULL;
  t->next = d->workers;
  if (d->workers) d->workers->prev = t;
  d->workers = t;
  pthread_mutex_unlock(&d->mu);
}

static void dog_remove(tdog *d, tworker *t) {
  pthread_mutex_lock(&d->mu);
  if (t->prev) t->prev->next = t->next; else d->workers = t->next;
  if (t->next) t->next->prev = t->prev;
  pthread_mutex_unlock(&d->mu);
}

static void *worker_main(void *arg) {
  pool_worker *w = arg;
  pool_t *p = w->pool;
  char err[256] = "not enough memory";
  const pool_conf *c = pool_config(p);
  tdog *dog = pool_data(p);
  ws_config cfg = {c->path, c->cpath, w->name};
  lua_State *L = ws_new(&cfg, err, sizeof err);
  tworker *t = L ? tw_new(L) : NULL;
  if (L && !t) snprintf(err, sizeof err, "not enough memory");
  if (t && c->has_init && !task_init(L, &c->init, err, sizeof err, 1)) {
    tw_unref(t);
    t = NULL;
  }
  if (!t) {
    if (L) owner_close_state(L);
    pool_break(p, err);
  } else {
    if (dog) dog_add(dog, t);
    fut_t *f;
    while ((f = pool_take(p, 1, NULL, 0, NULL))) {
      run_one(t, f, c->call_timeout);
      fut_unref(f);
    }
    if (dog) dog_remove(dog, t);
    pthread_mutex_lock(&t->mu);
    t->L = NULL;                 /* cur is NULL: no stop touches it any more */
    pthread_mutex_unlock(&t->mu);
    owner_close_state(L);
    tw_unref(t);
  }
  pool_worker_exit(w);
  return NULL;
}

/* ------------------------------------------------------------ watchdog */

static void *dog_main(void *arg) {
  tdog *d = arg;
  pthread_mutex_lock(&d->mu);
  while (!d->quit) {
    double now = clk_now(), next = now + d->timeout;
    fut_t *late = NULL;
    for (tworker *t = d->workers; t && !late; t = t->next) {
      pthread_mutex_lock(&t->mu);
      if (t->cur && !t->stopped) {
        if (t->deadline <= now) {
          late = t->cur;
          fut_ref(late);         /* the worker holds one until it completes it */
        } else if (t->deadline < next) {
          next = t->deadline;
        }
      }
      pthread_mutex_unlock(&t->mu);
    }
    if (late) {
      /* Outside the watchdog's lock: the stop takes the worker's. */
      pthread_mutex_unlock(&d->mu);
      int timed_out = fut_timeout(late);
      fut_unref(late);
      pthread_mutex_lock(&d->mu);
      if (timed_out) continue;
      /* Not running any more: a cancel(true) is stopping it this very
       * moment.  Look again shortly rather than spin. */
      next = clk_now() + 0.001;
    }
    struct timespec ts = clk_from(next);
    pthread_cond_timedwait(&d->cv, &d->mu, &ts);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

static void dog_destroy(void *data) {
  tdog *d = data;
  pthread_mutex_lock(&d->mu);
  d->quit = 1;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->thread, NULL);
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cv);
  free(d);
}

/* Starts the watchdog of a new pool (its backend data, stopped by
 * dog_destroy when the pool goes). */
static int dog_start(pool_t *p) {
  tdog *d = calloc(1, sizeof *d);
  if (!d) return 0;
  clk_mutex_init(&d->mu);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&d->cv, &ca);
  pthread_condattr_destroy(&ca);
  d->timeout = pool_config(p)->call_timeout;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int ok = pthread_create(&d->thread, NULL, dog_main, d) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!ok) {
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
    return 0;
  }
  pool_set_data(p, d);
  return 1;
}

static const pool_backend backend = {
  {"ThreadPoolExecutor", &pool_executor_class}, LUAX_BROKEN_THREAD, 0, 1, worker_main, dog_destroy
};

/* core.ThreadPoolExecutor(max_workers, initializer, initargs, prefix, nil,
 *                         call_timeout) */
static int l_new(lua_State *L) {
  lua_settop(L, 6);
  pool_t *p = pool_push_new(L, &backend);
  if (pool_config(p)->call_timeout > 0 && !dog_start(p))
    return luaL_error(L, "cannot start the call_timeout watchdog thread");
  return 1;
}

void tpool_open(lua_State *L) {
  pool_open(L, &backend);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "ThreadPoolExecutor");
}
