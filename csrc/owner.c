/* The owner of a Lua state: its one condition variable, its queue of due
 * callbacks, its executors.  See owner.h for the design.
 *
 * Lock order everywhere in the library: executor lock, then a future's
 * (striped) lock, then an owner's lock.  No Lua code runs under any of them.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "clock.h"
#include "future.h"
#include "owner.h"

static const char k_owner;
#define OWNER_KEY (&k_owner)
#define OWNER_MT "futures.Owner"
#define INTERRUPT_SLICE 0.05   /* how often a wait looks for Ctrl-C */

/* Futures queued for callbacks, in all the states of the process. */
static atomic_int callbacks_queued;

typedef struct exec_ref { void *pool; const exec_ops *ops; } exec_ref;

/* The registry's handle on the owner; its __gc runs when the state closes. */
typedef struct owner_box {
  owner_t *o;
  exec_ref *execs;
  int nexecs, capexecs;
} owner_box;

void owner_ref(owner_t *o) { atomic_fetch_add(&o->refs, 1); }

void owner_unref(owner_t *o) {
  if (o && atomic_fetch_sub(&o->refs, 1) == 1) {
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

/* Waits, without Lua, until every executor of the closing state is done:
 * queued work still runs (as in Python), and no worker outlives the module. */
static void wait_execs(owner_box *b) {
  for (int i = 0; i < b->nexecs; i++) b->execs[i].ops->shutdown(b->execs[i].pool, 0);
  for (int i = 0; i < b->nexecs; i++) {
    exec_ref *e = &b->execs[i];
    pthread_mutex_lock(&b->o->mu);
    while (!e->ops->finished(e->pool)) {
      struct timespec ts = clk_deadline(0.1);
      pthread_cond_timedwait(&b->o->cond, &b->o->mu, &ts);
    }
    pthread_mutex_unlock(&b->o->mu);
    e->ops->join(e->pool);
    e->ops->unref(e->pool);
  }
  b->nexecs = 0;
}

static int owner_gc(lua_State *L) {
  owner_box *b = luaL_checkudata(L, 1, OWNER_MT);
  if (!b->o) return 0;
  wait_execs(b);
  free(b->execs);
  b->execs = NULL;
  pthread_mutex_lock(&b->o->mu);
  b->o->closed = 1;
  fut_t *f = b->o->cbq_head;
  b->o->cbq_head = b->o->cbq_tail = NULL;
  pthread_mutex_unlock(&b->o->mu);
  while (f) {
    fut_t *next = f->cbnext;
    atomic_fetch_sub(&callbacks_queued, 1);
    fut_unref(f);
    f = next;
  }
  owner_unref(b->o);
  b->o = NULL;
  return 0;
}

static owner_box *owner_box_get(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, OWNER_KEY) == LUA_TUSERDATA) {
    owner_box *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return b;
  }
  lua_pop(L, 1);
  owner_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->o = NULL;
  b->execs = NULL;
  b->nexecs = b->capexecs = 0;
  if (luaL_newmetatable(L, OWNER_MT)) {
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
  b->o = o;
  lua_rawsetp(L, LUA_REGISTRYINDEX, OWNER_KEY);
  return b;
}

owner_t *owner_get(lua_State *L) { return owner_box_get(L)->o; }

void owner_add_exec(lua_State *L, void *pool, const exec_ops *ops) {
  owner_box *b = owner_box_get(L);
  /* Reap executors that were shut down and whose workers are gone, so a
   * program that creates executors in a loop does not accumulate them. */
  int j = 0;
  for (int i = 0; i < b->nexecs; i++) {
    exec_ref *e = &b->execs[i];
    if (e->ops->finished(e->pool)) { e->ops->join(e->pool); e->ops->unref(e->pool); }
    else b->execs[j++] = *e;
  }
  b->nexecs = j;
  if (b->nexecs == b->capexecs) {
    int cap = b->capexecs ? b->capexecs * 2 : 4;
    exec_ref *n = realloc(b->execs, (size_t)cap * sizeof *n);
    if (!n) luaL_error(L, "not enough memory");
    b->execs = n;
    b->capexecs = cap;
  }
  b->execs[b->nexecs].pool = pool;
  b->execs[b->nexecs].ops = ops;
  b->nexecs++;
}

/* Ctrl-C in lua.c installs a hook on the main thread; a wait that sees a
 * hook appear (one that was not there when it began) stops. */
typedef struct hookmark { lua_State *main; lua_Hook hook; int mask; } hookmark;

static hookmark hook_now(lua_State *L) {
  hookmark h;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  h.main = lua_tothread(L, -1);
  lua_pop(L, 1);
  h.hook = lua_gethook(h.main);
  h.mask = lua_gethookmask(h.main);
  return h;
}

static int hook_changed(const hookmark *h) {
  return lua_gethookmask(h->main) != h->mask || lua_gethook(h->main) != h->hook;
}

/* lua.c's SIGINT handler resets SIGINT to the default action as it sets its
 * hook (a second Ctrl-C kills); SIGINT is caught while a chunk runs. */
static int sigint_default(void) {
  struct sigaction sa;
  return sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL;
}

/* lua.c's Ctrl-C hook: every event, count 1.  A wait must notice one set
 * before it took its mark.  In a coroutine, the main thread's hook fires
 * only once the main thread runs again, so its presence says enough.  On
 * the main thread it fires at the wait's own call, so one that is there
 * now was either set by a SIGINT since that call, or is a user's hook of
 * the same shape, with SIGINT still caught. */
static int interrupt_pending(lua_State *L, const hookmark *h) {
  if (h->mask != (LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT) ||
      lua_gethookcount(h->main) != 1)
    return 0;
  return L != h->main || sigint_default();
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
  hookmark h = hook_now(L);
  return h.hook == NULL && sigint_default();
}

int owner_raise_interrupt(lua_State *L) {
  hookmark h = hook_now(L);
  lua_sethook(h.main, NULL, 0, 0);  /* the hook would fire again later */
  return luaL_error(L, "%s", k_interrupted);
}

void owner_queue_callbacks(owner_t *o, fut_t *f) {
  pthread_mutex_lock(&o->mu);
  if (!o->closed) {
    fut_ref(f);
    f->cbnext = NULL;
    if (o->cbq_tail) o->cbq_tail->cbnext = f; else o->cbq_head = f;
    o->cbq_tail = f;
    atomic_fetch_add(&callbacks_queued, 1);
  }
  pthread_cond_broadcast(&o->cond);
  pthread_mutex_unlock(&o->mu);
}

/* Runs due callbacks until none is left or a Ctrl-C stopped one. */
static int drain_callbacks(lua_State *L, int *interrupted) {
  /* The common case, no callbacks due anywhere: not even a lookup. */
  if (!atomic_load(&callbacks_queued)) return 0;
  owner_t *o = owner_get(L);
  int n = 0;
  while (!*interrupted) {
    pthread_mutex_lock(&o->mu);
    fut_t *f = o->cbq_head;
    if (f) {
      o->cbq_head = f->cbnext;
      if (!o->cbq_head) o->cbq_tail = NULL;
      f->cbnext = NULL;
    }
    if (f) atomic_fetch_sub(&callbacks_queued, 1);
    pthread_mutex_unlock(&o->mu);
    if (!f) break;
    n += fut_run_callbacks(L, f, interrupted);   /* drops the queue's reference */
  }
  return n;
}

int owner_run_callbacks(lua_State *L) {
  int interrupted = 0;
  int n = drain_callbacks(L, &interrupted);
  if (interrupted) owner_raise_interrupt(L);
  return n;
}

int owner_block(lua_State *L, int (*ready)(void *), void *arg, double deadline) {
  owner_t *o = owner_get(L);
  hookmark h = hook_now(L);
  if (interrupt_pending(L, &h)) return OWNER_INTERRUPTED;
  for (;;) {
    int due = 0, rc = -1;
    pthread_mutex_lock(&o->mu);
    for (;;) {
      if (o->cbq_head) { due = 1; break; }
      if (ready(arg)) { rc = OWNER_READY; break; }
      if (hook_changed(&h)) { rc = OWNER_INTERRUPTED; break; }
      double now = clk_now();
      if (deadline >= 0 && now >= deadline) { rc = OWNER_TIMEOUT; break; }
      double until = now + INTERRUPT_SLICE;
      if (deadline >= 0 && deadline < until) until = deadline;
      struct timespec ts = clk_from(until);
      pthread_cond_timedwait(&o->cond, &o->mu, &ts);
    }
    pthread_mutex_unlock(&o->mu);
    if (!due) return rc;
    int interrupted = 0;
    drain_callbacks(L, &interrupted);
    if (interrupted) return OWNER_INTERRUPTED;
  }
}
