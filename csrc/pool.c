/* The executor core shared by ThreadPoolExecutor and ProcessPoolExecutor.
 *
 * DESIGN
 * Threads: the state that created the executor (its only user: the Lua
 * object lives in that state) submits; worker threads (a backend's
 * worker_main) take futures from the queue.  Workers start lazily in submit,
 * while none is idle and fewer than max_workers run; a worker never exits
 * before shutdown or breakage, so an idle one is always reused first.
 *
 * Locks: p->mu guards the queue and the counters.  Order: p->mu, then a
 * future's lock, then an owner's lock.  No Lua code runs under p->mu, and
 * nothing here blocks while holding it except pthread_cond_wait.
 *
 * Wake-ups: submit signals a worker only when one is idle and has not been
 * signalled already (idle > wakeups), so a burst of submits wakes each idle
 * worker once instead of once per task.  Workers usually run faster than
 * the one state that submits, so they run out of work in the middle of a
 * burst: one of them at a time (p->spinning) keeps looking for work for a
 * few tens of microseconds before it sleeps, and a submit meanwhile needs
 * no wake-up at all.  The spinner looks at npending without the lock and
 * takes the lock to take the call or to go to sleep, so a submit either
 * sees it spinning (and it will find the call) or sees it idle (and
 * signals it).  Not on a single CPU, where it would only delay the
 * submitter.
 *
 * Lifetime: the pool is refcounted: the Lua object, each worker thread and
 * the creating state's owner (which at state close shuts it down and waits,
 * so queued work runs and no worker outlives the module) hold references.
 * Shutting down sets p->shutdown; workers drain the queue, then exit; the
 * last one signals the owner.  Threads are joined by whoever waits.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lauxlib.h"
#include "clock.h"
#include "callenc.h"
#include "future.h"
#include "grow.h"
#include "pool.h"
#include "suspend.h"
#include "transfer.h"
#include "workerstate.h"

static atomic_int pool_numbers[2];   /* per kind, like Python's counters */

const luax_class pool_executor_class = {"executor", NULL};

struct pool {
  atomic_int refs;
  const pool_backend *be;
  pthread_mutex_t mu;
  pthread_cond_t work;        /* workers wait here for tasks */
  fifo queue;                 /* pending futures (fut_t.qlink); holds refs */
  atomic_int npending;        /* changed under mu; a spinning worker reads it without */
  int max_workers;
  int nworkers;               /* started and not yet exited */
  atomic_int live;            /* same, readable without the lock */
  int idle, wakeups;          /* idle workers; signals sent, not yet taken */
  int spinning;               /* a worker is about to sleep, looking for work first */
  int may_spin;               /* more than one CPU */
  int nstarted;
  atomic_int shutdown;        /* set under mu; read without it by the owner */
  atomic_int broken;          /* likewise */
  char *broken_msg;
  pthread_t *threads;
  size_t nthreads, capthreads;
  owner_t *owner;             /* the creating state, told when workers are gone */
  int number;
  char *prefix;
  pool_conf conf;
  void *data;                 /* the backend's */
};

#define QFUT(node) FIFO_ITEM(node, fut_t, qlink)

const pool_conf *pool_config(pool_t *p) { return &p->conf; }
void *pool_data(pool_t *p) { return p->data; }
void pool_set_data(pool_t *p, void *data) { p->data = data; }

static void pool_ref(pool_t *p) { atomic_fetch_add(&p->refs, 1); }

static void pool_unref(pool_t *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  if (p->be->destroy && p->data) p->be->destroy(p->data);
  msg_free(&p->conf.init);
  free(p->broken_msg);
  free(p->threads);
  free(p->prefix);
  free(p->conf.path);
  free(p->conf.cpath);
  owner_unref(p->owner);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work);
  free(p);
}

typedef struct pool_box { pool_t *p; } pool_box;

static pool_t *open_pool(lua_State *L, pool_box *b) {
  if (!b->p) luaL_error(L, "executor is closed");
  return b->p;
}

pool_t *pool_check(lua_State *L, int idx) {
  return open_pool(L, luax_checkudata(L, idx, &pool_executor_class));
}

/* Argument 1 of a method (luax_setmethods: the metatable is upvalue 1). */
static pool_t *self(lua_State *L) { return open_pool(L, luax_checkself(L, &pool_executor_class)); }

/* ------------------------------------------------------------ the queue */

#define SPIN_SECONDS 50e-6

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Called by the spinning worker, without the lock. */
static void spin_for_work(pool_t *p) {
  double until = clk_now() + SPIN_SECONDS;
  for (int i = 1;; i++) {
    if (atomic_load_explicit(&p->npending, memory_order_relaxed) > 0 ||
        atomic_load_explicit(&p->shutdown, memory_order_relaxed))
      return;
    cpu_relax();
    if (i % 32 == 0 && clk_now() > until) return;
  }
}

fut_t *pool_take(pool_t *p, int wait, fut_t **extra, int more, int *nextra) {
  pthread_mutex_lock(&p->mu);
  if (wait && !p->queue.head && !p->shutdown && !p->spinning && p->may_spin) {
    p->spinning = 1;
    pthread_mutex_unlock(&p->mu);
    spin_for_work(p);
    pthread_mutex_lock(&p->mu);
    p->spinning = 0;
  }
  while (wait && !p->queue.head && !p->shutdown) {
    p->idle++;
    pthread_cond_wait(&p->work, &p->mu);
    p->idle--;
    if (p->wakeups > 0) p->wakeups--;
  }
  fut_t *f = NULL;
  int n = 0;
  /* No call goes to a worker that has one already (without waiting: a
   * call ahead; waiting: extras) while another worker is idle or could
   * still be started, and not unless there are more calls than the other
   * workers could take. */
  int all_busy = p->idle + p->spinning == 0 && p->nworkers >= p->max_workers;
  if (p->queue.head && (wait || (all_busy && p->npending > p->nworkers - 1))) {
    f = QFUT(fifo_pop(&p->queue));
    p->npending--;
    /* Extras only up to a fair share, so other workers are not starved. */
    int fair = all_busy ? p->npending / (p->nworkers > 0 ? p->nworkers : 1) : 0;
    if (more > fair) more = fair;
    while (n < more && p->queue.head) {
      extra[n++] = QFUT(fifo_pop(&p->queue));
      p->npending--;
    }
  }
  pthread_mutex_unlock(&p->mu);
  if (nextra) *nextra = n;
  return f;
}

int pool_idle_workers(pool_t *p) {
  pthread_mutex_lock(&p->mu);
  int n = p->idle - p->wakeups + p->spinning;
  pthread_mutex_unlock(&p->mu);
  return n > 0 ? n : 0;
}

void pool_giveback(pool_t *p, fut_t **fs, int n) {
  /* A call sent ahead and skipped was never started: pending again (it
   * may be cancelled now), before anyone can take it. */
  for (int i = 0; i < n; i++) {
    fut_lock(fs[i]);
    if (atomic_load(&fs[i]->state) == F_RUNNING) atomic_store(&fs[i]->state, F_PENDING);
    fut_unlock(fs[i]);
  }
  pthread_mutex_lock(&p->mu);
  int broken = p->broken;
  if (!broken) {
    for (int i = n; i-- > 0;) {   /* at the head, in their order */
      fifo_node *q = &fs[i]->qlink;
      q->next = p->queue.head;
      p->queue.head = q;
      if (!p->queue.tail) p->queue.tail = q;
    }
    p->npending += n;
    pthread_cond_broadcast(&p->work);
  }
  const char *why = p->broken_msg ? p->broken_msg : "the executor is broken";
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; broken && i < n; i++) {   /* broken_msg is set once, never freed before the pool */
    fut_fail_msg(fs[i], OUT_BROKEN, why);
    fut_unref(fs[i]);
  }
}

/* Takes the whole queue (under the lock); the caller owns the refs. */
static fifo_node *take_all(pool_t *p) {
  p->npending = 0;
  return fifo_take_all(&p->queue);
}

void pool_break(pool_t *p, const char *why) {
  pthread_mutex_lock(&p->mu);
  if (!p->broken) {
    p->broken_msg = strdup(why);   /* before the flag: submit reads it unlocked */
    p->broken = 1;
  }
  p->shutdown = 1;
  fifo_node *n = take_all(p);
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  while (n) {
    fifo_node *next = n->next;
    fut_fail_msg(QFUT(n), OUT_BROKEN, why);
    fut_unref(QFUT(n));
    n = next;
  }
}

void pool_worker_exit(pool_worker *w) {
  pool_t *p = w->pool;
  pthread_mutex_lock(&p->mu);
  p->nworkers--;
  atomic_fetch_sub(&p->live, 1);
  pthread_mutex_unlock(&p->mu);
  owner_signal(p->owner);
  free(w);
  pool_unref(p);
}

/* Starts one more worker thread for p (with the lock not held); 0 on error. */
static int start_worker(pool_t *p) {
  pool_worker *w = calloc(1, sizeof *w);
  if (!w) return 0;
  pool_ref(p);
  w->pool = p;
  pthread_mutex_lock(&p->mu);
  w->number = p->nstarted++;
  if (p->prefix) snprintf(w->name, sizeof w->name, "%s_%d", p->prefix, w->number);
  else snprintf(w->name, sizeof w->name, "%s-%d_%d", p->be->cls.name, p->number, w->number);
  pthread_t *t = grow_array(p->threads, &p->capthreads, p->nthreads + 1, sizeof *t);
  int ok = t != NULL;
  if (ok) p->threads = t;
  if (ok) {
    /* Workers block every signal: Ctrl-C reaches the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    ok = pthread_create(&p->threads[p->nthreads], NULL, p->be->worker_main, w) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ok) p->nthreads++;
  }
  if (!ok) {
    p->nworkers--;
    atomic_fetch_sub(&p->live, 1);
  }
  pthread_mutex_unlock(&p->mu);
  if (!ok) { free(w); pool_unref(p); }
  return ok;
}

/* -------------------------------------------------- executor operations */

static void shutdown_nowait(pool_t *p, int cancel) {
  pthread_mutex_lock(&p->mu);
  p->shutdown = 1;
  fifo_node *n = cancel ? take_all(p) : NULL;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  while (n) {
    fifo_node *next = n->next;
    fut_cancel(QFUT(n), 0);
    fut_unref(QFUT(n));
    n = next;
  }
}

/* Done for good: shut down and no worker left.  (A pool that has not
 * started a worker yet is not finished: its workers are still to come.) */
static int finished(void *pool) {
  pool_t *p = pool;
  return atomic_load(&p->shutdown) && atomic_load(&p->live) == 0;
}

static void join(pool_t *p) {
  pthread_mutex_lock(&p->mu);
  pthread_t *t = p->threads;
  size_t n = p->nthreads;
  p->threads = NULL;
  p->nthreads = p->capthreads = 0;
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < n; i++) pthread_join(t[i], NULL);
  free(t);
}

static void ops_shutdown(void *pool, int cancel) { shutdown_nowait(pool, cancel); }
static void ops_join(void *pool) { join(pool); }
static void ops_unref(void *pool) { pool_unref(pool); }
static const exec_ops pool_ops = {ops_shutdown, finished, ops_join, ops_unref};

/* ------------------------------------------------------------ Lua side */

static const char *broken_why(pool_t *p) {
  return p->broken_msg ? p->broken_msg : "the executor is broken";
}

static int refuse(lua_State *L, pool_t *p) {
  if (p->broken) return luax_error(L, p->be->broken, broken_why(p));
  return luax_error(L, LUAX_SHUTDOWN, "cannot schedule new futures after shutdown");
}

/* Upvalue 2: the Future metatable, at hand for the new future. */
static int l_submit(lua_State *L) {
  pool_t *p = self(L);
  luax_checkcallable(L, 2);
  if (p->broken || p->shutdown) return refuse(L, p);
  int nvals = lua_gettop(L) - 1;
  future_box *b = future_push_new(L, lua_upvalueindex(2));
  fut_t *f = b->f;
  f->broken_kind = p->be->broken_kind;
  char err[TR_ERRLEN];
  tr_opts o = {p->be->lightuserdata, "argument #%d", 1, NULL};
  if (!tr_encode_call(L, 2, nvals, &f->msg) && !tr_encode(L, 2, nvals, &f->msg, &o, err)) {
    luax_push_error(L, LUAX_TRANSFER, err);
    future_finish_local(L, -2, 1, 1, NULL);
    return 1;
  }
  int start = 0;
  pthread_mutex_lock(&p->mu);
  /* Again under the lock: a pool that broke or shut down meanwhile (a
   * failing initializer) must not get a call nobody will ever take. */
  if (p->broken || p->shutdown) {
    pthread_mutex_unlock(&p->mu);
    return refuse(L, p);
  }
  fut_ref(f);
  fifo_push(&p->queue, &f->qlink);
  p->npending++;
  if (p->idle > p->wakeups) {
    p->wakeups++;
    pthread_cond_signal(&p->work);
  } else if (p->nworkers < p->max_workers && p->npending > p->idle + p->spinning) {
    p->nworkers++;
    atomic_fetch_add(&p->live, 1);
    start = 1;
  }
  pthread_mutex_unlock(&p->mu);
  if (start && !start_worker(p) && atomic_load(&p->live) == 0)
    pool_break(p, "cannot start a worker thread");
  return 1;
}

/* ex:shutdown([wait [, cancel_futures]]).  In a spawned coroutine the
 * wait suspends; nothing posts a wake-up when the workers are gone, so it
 * looks again every SUSP_RECHECK seconds. */
static int shutdown_k(lua_State *L, int status, lua_KContext ctx) {
  pool_t *p = self(L);
  if (status == LUA_OK) {
    shutdown_nowait(p, lua_toboolean(L, 3));
    owner_run_jobs(L);
    if (!ctx) return 0;
  }
  if (!finished(p)) {
    susp_t *s = susp_current(L);
    if (s) return susp_wait(L, s, clk_now() + SUSP_RECHECK, ctx, shutdown_k);
    if (owner_block(L, finished, p, -1) == OWNER_INTERRUPTED) return owner_raise_interrupt(L);
  }
  join(p);
  return 0;
}

static int l_shutdown(lua_State *L) {
  self(L);
  return shutdown_k(L, LUA_OK, lua_isnoneornil(L, 2) || lua_toboolean(L, 2));
}

static int l_close(lua_State *L) {
  lua_settop(L, 1);
  lua_pushboolean(L, 1);
  return l_shutdown(L);
}

static int l_gc(lua_State *L) {
  pool_box *b = lua_touserdata(L, 1);
  if (b->p) {
    shutdown_nowait(b->p, 0);  /* queued calls still run */
    pool_unref(b->p);
    b->p = NULL;
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  pool_t *p = self(L);
  pthread_mutex_lock(&p->mu);
  int max = p->max_workers, n = p->nworkers, pending = 0;
  for (fifo_node *q = p->queue.head; q; q = q->next)   /* cancelled calls wait to be skipped */
    if (atomic_load(&QFUT(q)->state) == F_PENDING) pending++;
  const char *state = p->broken ? " broken" : p->shutdown ? " shutdown" : "";
  pthread_mutex_unlock(&p->mu);
  lua_pushfstring(L, "<%s max_workers=%d workers=%d pending=%d%s>", p->be->cls.name, max, n, pending, state);
  return 1;
}

/* ex:_stats() -> workers, idle, pending (for specs and tostring-like use) */
static int l_stats(lua_State *L) {
  pool_t *p = self(L);
  pthread_mutex_lock(&p->mu);
  lua_pushinteger(L, p->nworkers);
  lua_pushinteger(L, p->idle);
  lua_pushinteger(L, p->npending);
  lua_pushinteger(L, p->nstarted);
  pthread_mutex_unlock(&p->mu);
  return 4;
}

static const luaL_Reg metamethods[] = {
  {"__gc", l_gc},
  {"__close", l_close},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"shutdown", l_shutdown},
  {"_stats", l_stats},
  {NULL, NULL}
};

void pool_open(lua_State *L, const pool_backend *be) {
  if (luax_newclass(L, &be->cls)) {
    luax_setmethods(L, metamethods, methods);
    lua_getfield(L, -1, "__index");
    lua_pushvalue(L, -2);
    future_push_class(L);
    lua_pushcclosure(L, l_submit, 2);
    lua_setfield(L, -2, "submit");
    lua_pop(L, 1);
  }
  /* The Lua front adds map and friends to the method table. */
  lua_getfield(L, -1, "__index");
  lua_pushfstring(L, "%s_methods", be->cls.name);
  lua_insert(L, -2);
  lua_settable(L, -4);
  lua_pop(L, 1);
}

pool_t *pool_push_new(lua_State *L, const pool_backend *be) {
  lua_Integer max = luaL_checkinteger(L, 1);
  luaL_argcheck(L, max >= 1 && max <= INT_MAX, 1, "max_workers must be between 1 and INT_MAX");
  int has_init = !lua_isnoneornil(L, 2);
  if (has_init) luax_checkcallable(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  const char *prefix = luaL_optstring(L, 4, NULL);
  lua_Integer max_tasks = luaL_optinteger(L, 5, 0);
  luaL_argcheck(L, max_tasks >= 0, 5, "max_tasks_per_child must be a positive integer");
  lua_Number call_timeout = luaL_optnumber(L, 6, 0), stop_grace = luaL_optnumber(L, 7, 1);
  luaL_argcheck(L, call_timeout >= 0, 6, "call_timeout must be a positive number");
  luaL_argcheck(L, stop_grace >= 0, 7, "stop_grace must be a number >= 0");
  owner_t *o = owner_get(L);

  pool_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  luax_setclass(L, &be->cls);
  int box = lua_gettop(L);

  pool_t *p = calloc(1, sizeof *p);
  if (!p) luaL_error(L, "not enough memory");
  atomic_init(&p->refs, 1);
  atomic_init(&p->live, 0);
  p->be = be;
  clk_mutex_init(&p->mu);
  pthread_cond_init(&p->work, NULL);
  p->max_workers = (int)max;
  p->conf.max_tasks = (int)max_tasks;
  p->conf.call_timeout = call_timeout;
  p->conf.stop_grace = stop_grace;
  p->may_spin = sysconf(_SC_NPROCESSORS_ONLN) > 1;
  p->number = atomic_fetch_add(&pool_numbers[be->broken_kind], 1);
  p->owner = o;
  owner_ref(o);
  msg_init(&p->conf.init);
  b->p = p;   /* from here on, __gc frees it */
  p->prefix = prefix ? strdup(prefix) : NULL;
  p->conf.path = ws_package_field(L, "path");
  p->conf.cpath = ws_package_field(L, "cpath");
  if (has_init) {
    /* The initializer and its arguments travel like a task's call. */
    int top = lua_gettop(L);
    lua_pushvalue(L, 2);
    int n = 1;
    if (lua_istable(L, 3)) {
      lua_Integer len = luaL_len(L, 3);
      luaL_checkstack(L, (int)len, "too many initargs");
      for (lua_Integer i = 1; i <= len; i++) lua_geti(L, 3, i);
      n += (int)len;
    }
    char err[TR_ERRLEN];
    tr_opts opts = {be->lightuserdata, "initargs[%d]", 1, NULL};
    if (!tr_encode(L, top + 1, n, &p->conf.init, &opts, err)) luax_error(L, LUAX_TRANSFER, err);
    lua_settop(L, top);
    p->conf.has_init = 1;
  }
  pool_ref(p);
  owner_add_exec(L, p, &pool_ops);
  lua_settop(L, box);
  return p;
}
