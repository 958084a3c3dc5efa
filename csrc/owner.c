/* The owner of a Lua state: its one condition variable, its queue of
 * jobs, its executors, and how its waits notice Ctrl-C.  See owner.h.
 *
 * Lock order everywhere in the library: an executor's lock, then a
 * future's (striped) lock, then an owner's lock; and a queue's lock
 * (queue.c), then an owner's lock.  No Lua code runs under any of them.
 */
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "lauxlib.h"
#include "clock.h"
#include "grow.h"
#include "luax.h"
#include "owner.h"

#define INTERRUPT_SLICE 0.05   /* how often a wait looks for Ctrl-C */

/* Jobs queued in all the states of the process: the common case, nothing
 * due anywhere, costs no registry lookup. */
static atomic_int jobs_queued;

typedef struct exec_ref { void *pool; const exec_ops *ops; } exec_ref;

/* The registry's handle on the owner; its __gc runs when the state closes.
 * It is created when the module opens, before anything that uses it, so it
 * is finalized after them (finalizers run in reverse order). */
typedef struct owner_box {
  owner_t *o;                 /* NULL once finalized */
  int refuse;                 /* owner_close_state: make nothing more here */
  exec_ref *execs;
  size_t nexecs, capexecs;
} owner_box;

static const luax_class owner_class = {"futures.Owner", NULL};

void owner_ref(owner_t *o) { atomic_fetch_add(&o->refs, 1); }

void owner_unref(owner_t *o) {
  if (o && atomic_fetch_sub(&o->refs, 1) == 1) {
    if (o->efd >= 0) close(o->efd);
    free(o->timers);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cond);
    free(o);
  }
}

void owner_signal(owner_t *o) {
  pthread_mutex_lock(&o->mu);
  pthread_cond_broadcast(&o->cond);
  pthread_mutex_unlock(&o->mu);
}

int owner_post_locked(owner_t *o, owner_job *j) {
  if (o->closed) return 0;
  if (!j->queued) {
    if (!o->jobs.head && o->efd >= 0) {   /* the fd turns readable */
      uint64_t one = 1;
      if (write(o->efd, &one, sizeof one) < 0) { /* full: readable anyway */ }
    }
    j->queued = 1;
    fifo_push(&o->jobs, &j->link);
    atomic_fetch_add(&jobs_queued, 1);
  }
  pthread_cond_broadcast(&o->cond);
  return 1;
}

int owner_post(owner_t *o, owner_job *j) {
  pthread_mutex_lock(&o->mu);
  int ok = owner_post_locked(o, j);
  pthread_mutex_unlock(&o->mu);
  return ok;
}

/* ---------------------------------------------------------------- timers */

static void heap_put(owner_t *o, size_t i, owner_timer *t) {
  o->timers[i] = t;
  t->slot = i + 1;
}

static void sift_up(owner_t *o, size_t i) {
  owner_timer *t = o->timers[i];
  while (i > 0 && o->timers[(i - 1) / 2]->at > t->at) {
    heap_put(o, i, o->timers[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_put(o, i, t);
}

static void sift_down(owner_t *o, size_t i) {
  owner_timer *t = o->timers[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= o->ntimers) break;
    if (c + 1 < o->ntimers && o->timers[c + 1]->at < o->timers[c]->at) c++;
    if (o->timers[c]->at >= t->at) break;
    heap_put(o, i, o->timers[c]);
    i = c;
  }
  heap_put(o, i, t);
}

void owner_timer_clear(owner_t *o, owner_timer *t) {
  if (!t->slot) return;
  size_t i = t->slot - 1;
  t->slot = 0;
  owner_timer *last = o->timers[--o->ntimers];
  if (last == t) return;
  heap_put(o, i, last);
  sift_up(o, i);
  sift_down(o, last->slot - 1);
}

int owner_timer_set(owner_t *o, owner_timer *t, double at) {
  owner_timer_clear(o, t);
  owner_timer **h = grow_array(o->timers, &o->captimers, o->ntimers + 1, sizeof *h);
  if (!h) return 0;
  o->timers = h;
  t->at = at;
  o->timers[o->ntimers] = t;
  sift_up(o, o->ntimers++);
  return 1;
}

/* Posts the jobs of the timers that are due; the state's thread only. */
static void post_due(owner_t *o, double now) {
  while (o->ntimers && o->timers[0]->at <= now) {
    owner_timer *t = o->timers[0];
    owner_timer_clear(o, t);
    owner_post(o, t->job);
  }
}

static double next_timer(owner_t *o) { return o->ntimers ? o->timers[0]->at : -1; }

double owner_timeout(lua_State *L) {
  owner_t *o = owner_get(L);
  pthread_mutex_lock(&o->mu);
  int due = o->jobs.head != NULL;
  pthread_mutex_unlock(&o->mu);
  if (due) return 0;
  double at = next_timer(o);
  if (at < 0) return -1;
  double left = at - clk_now();
  return left > 0 ? left : 0;
}

int owner_fd(lua_State *L) {
  owner_t *o = owner_get(L);
  pthread_mutex_lock(&o->mu);
  if (o->efd < 0) {
    o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint64_t one = 1;
    if (o->efd >= 0 && o->jobs.head && write(o->efd, &one, sizeof one) < 0) { /* readable anyway */ }
  }
  int fd = o->efd;
  pthread_mutex_unlock(&o->mu);
  if (fd < 0) luaL_error(L, "cannot create an event descriptor");
  return fd;
}

static void release_exec(exec_ref *e) {
  e->ops->join(e->pool);
  e->ops->unref(e->pool);
}

/* Waits, without Lua, until every executor of the closing state is done:
 * queued work still runs (as in Python), and no worker outlives the module. */
static void wait_execs(owner_box *b) {
  for (size_t i = 0; i < b->nexecs; i++) b->execs[i].ops->shutdown(b->execs[i].pool, 0);
  for (size_t i = 0; i < b->nexecs; i++) {
    exec_ref *e = &b->execs[i];
    pthread_mutex_lock(&b->o->mu);
    while (!e->ops->finished(e->pool)) {
      struct timespec ts = clk_deadline(0.1);
      pthread_cond_timedwait(&b->o->cond, &b->o->mu, &ts);
    }
    pthread_mutex_unlock(&b->o->mu);
    release_exec(e);
  }
  b->nexecs = 0;
}

static int owner_gc(lua_State *L) {
  owner_box *b = luax_checkudata(L, 1, &owner_class);
  if (!b->o) return 0;
  wait_execs(b);
  free(b->execs);
  b->execs = NULL;
  owner_t *o = b->o;
  pthread_mutex_lock(&o->mu);
  o->closed = 1;
  fifo_node *n = fifo_take_all(&o->jobs);
  pthread_mutex_unlock(&o->mu);
  while (n) {
    fifo_node *next = n->next;
    owner_job *j = FIFO_ITEM(n, owner_job, link);
    atomic_fetch_sub(&jobs_queued, 1);
    j->queued = 0;
    j->ops->drop(j);
    n = next;
  }
  owner_unref(o);
  b->o = NULL;
  return 0;
}

/* The state's owner box, or NULL if it has none yet. */
static owner_box *find_box(lua_State *L) {
  owner_box *b = lua_rawgetp(L, LUA_REGISTRYINDEX, &owner_class) == LUA_TUSERDATA ? lua_touserdata(L, -1) : NULL;
  lua_pop(L, 1);
  return b;
}

static owner_box *new_box(lua_State *L) {
  owner_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  *b = (owner_box){0};
  if (luax_newclass(L, &owner_class)) {
    lua_pushcfunction(L, owner_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  owner_t *o = calloc(1, sizeof *o);
  if (!o) luaL_error(L, "not enough memory");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&o->cond, &ca);
  pthread_condattr_destroy(&ca);
  clk_mutex_init(&o->mu);
  atomic_init(&o->refs, 1);
  o->efd = -1;
  b->o = o;
  lua_rawsetp(L, LUA_REGISTRYINDEX, &owner_class);
  return b;
}

/* Raises in a finalizer that runs after the owner's, at lua_close, or in
 * any finalizer of a worker's state being closed. */
static owner_box *check_open(lua_State *L, owner_box *b) {
  if (!b->o || b->refuse) {
    lua_pushliteral(L, "futures: the Lua state is closing");
    lua_error(L);
  }
  return b;
}

static owner_box *box_get(lua_State *L) {
  owner_box *b = find_box(L);
  return b ? check_open(L, b) : new_box(L);
}

owner_t *owner_get(lua_State *L) { return box_get(L)->o; }

void owner_push_box(lua_State *L) {
  box_get(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &owner_class);
}

owner_t *owner_of_box(lua_State *L, int idx) { return check_open(L, lua_touserdata(L, idx))->o; }

void owner_close_state(lua_State *L) {
  owner_box *b = find_box(L);
  if (b) b->refuse = 1;
  lua_close(L);
}

void owner_add_exec(lua_State *L, void *pool, const exec_ops *ops) {
  owner_box *b = box_get(L);
  /* Reap executors that were shut down and whose workers are gone, so a
   * program that creates executors in a loop does not accumulate them. */
  size_t j = 0;
  for (size_t i = 0; i < b->nexecs; i++) {
    if (b->execs[i].ops->finished(b->execs[i].pool)) release_exec(&b->execs[i]);
    else b->execs[j++] = b->execs[i];
  }
  b->nexecs = j;
  exec_ref *n = grow_array(b->execs, &b->capexecs, b->nexecs + 1, sizeof *n);
  if (!n) {
    ops->unref(pool);
    luaL_error(L, "not enough memory");
  }
  b->execs = n;
  b->execs[b->nexecs++] = (exec_ref){pool, ops};
}

/* ---------------------------------------------------------------- Ctrl-C
 * lua.c handles SIGINT by resetting it to the default action and setting
 * a hook on the main thread (every event, count 1) that raises
 * "interrupted!".  A C function blocked in a wait never lets that hook
 * run, so waits look for it: that hook, with SIGINT at its default.
 * While a chunk runs normally lua.c catches SIGINT, so a user's own hook
 * of the same shape (a profiler, a coverage tool, one set by a callback)
 * is never taken for a Ctrl-C, and never removed. */

static lua_State *main_thread(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *m = lua_tothread(L, -1);
  lua_pop(L, 1);
  return m;
}

static int sigint_default(void) {
  struct sigaction sa;
  return sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL;
}

static int ctrl_c_hooked(lua_State *main) {
  return lua_gethookmask(main) == (LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT) &&
         lua_gethookcount(main) == 1 && sigint_default();
}

/* lua.c's Ctrl-C error, which a wait raises in its place. */
static const char k_interrupted[] = "interrupted!";

/* A callback that the Ctrl-C hook stopped failed with "interrupted!", and
 * the hook, having fired, is gone: the wait that ran the callback must
 * raise it again, or the Ctrl-C would be lost as a callback's error. */
int owner_is_interrupt(lua_State *L, int idx) {
  size_t len;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
  size_t k = sizeof k_interrupted - 1;
  if (!s || len < k || strcmp(s + len - k, k_interrupted) != 0) return 0;
  return lua_gethook(main_thread(L)) == NULL && sigint_default();
}

int owner_raise_interrupt(lua_State *L) {
  owner_box *b = find_box(L);
  if (b && b->o && atomic_load(&b->o->stop))
    return luax_error(L, LUAX_CANCELLED, "the call was stopped");
  lua_State *m = main_thread(L);
  if (ctrl_c_hooked(m)) lua_sethook(m, NULL, 0, 0);  /* it would fire again later */
  /* At the user's line, as lua.c's own hook would raise it there, even
   * when the wait was started by the front (map's loop, wait). */
  luax_push_userwhere(L);
  lua_pushfstring(L, "%s%s%s", lua_tostring(L, -1), *lua_tostring(L, -1) ? " " : "", k_interrupted);
  return lua_error(L);
}

/* ------------------------------------------------------------------ jobs */

/* Runs due jobs until none is left or a Ctrl-C stopped one.  Never inside
 * a job: a blocking call made by a callback leaves the others queued, so
 * each runs to its end before the next starts. */
static int run_jobs(owner_t *o, lua_State *L, int *interrupted) {
  if (o->running) return 0;
  o->running = 1;
  post_due(o, clk_now());
  int n = 0;
  while (!*interrupted) {
    pthread_mutex_lock(&o->mu);
    fifo_node *node = fifo_pop(&o->jobs);
    owner_job *j = node ? FIFO_ITEM(node, owner_job, link) : NULL;
    if (j) j->queued = 0;
    else if (o->efd >= 0) {   /* nothing due: the fd stops being readable */
      uint64_t v;
      if (read(o->efd, &v, sizeof v) < 0) { /* was not readable */ }
    }
    pthread_mutex_unlock(&o->mu);
    if (!j) break;
    atomic_fetch_sub(&jobs_queued, 1);
    n += j->ops->run(L, j, interrupted);
  }
  o->running = 0;
  return n;
}

int owner_run_jobs(lua_State *L) {
  owner_box *b = NULL;
  if (!atomic_load(&jobs_queued)) {   /* nothing queued anywhere: only timers can be due */
    b = find_box(L);
    if (!b || !b->o || !b->o->ntimers || b->o->timers[0]->at > clk_now()) return 0;
  }
  if (!b) b = find_box(L);
  if (!b || !b->o) return 0;
  int interrupted = 0;
  int n = run_jobs(b->o, L, &interrupted);
  if (interrupted) owner_raise_interrupt(L);
  return n;
}

int owner_block(lua_State *L, int (*ready)(void *), void *arg, double deadline) {
  owner_t *o = owner_get(L);
  lua_State *m = main_thread(L);
  for (;;) {
    int due = 0, rc = -1;
    pthread_mutex_lock(&o->mu);
    for (;;) {
      double now = clk_now(), timer = o->running ? -1 : next_timer(o);
      if ((o->jobs.head || (timer >= 0 && timer <= now)) && !o->running) { due = 1; break; }
      if (ready(arg)) { rc = OWNER_READY; break; }
      if (ctrl_c_hooked(m) || atomic_load_explicit(&o->stop, memory_order_relaxed)) {
        rc = OWNER_INTERRUPTED;
        break;
      }
      if (deadline >= 0 && now >= deadline) { rc = OWNER_TIMEOUT; break; }
      double until = now + INTERRUPT_SLICE;
      if (deadline >= 0 && deadline < until) until = deadline;
      if (timer >= 0 && timer < until) until = timer;
      struct timespec ts = clk_from(until);
      pthread_cond_timedwait(&o->cond, &o->mu, &ts);
    }
    pthread_mutex_unlock(&o->mu);
    if (!due) return rc;
    int interrupted = 0;
    run_jobs(o, L, &interrupted);
    if (interrupted || atomic_load(&o->stop)) return OWNER_INTERRUPTED;
  }
}

static int never(void *arg) { (void)arg; return 0; }

int owner_sleep(lua_State *L, double deadline) {
  owner_t *o = owner_get(L);
  int was = o->running;
  o->running = 1;   /* jobs wait for the next blocking call or poll() */
  int rc = owner_block(L, never, NULL, deadline);
  o->running = was;
  return rc;
}
