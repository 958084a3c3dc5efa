/* Futures: the shared state machine and the Lua Future object.
 *
 * DESIGN
 * A fut_t is shared by the state that owns the Lua Future, the executor's
 * queue and the worker running it; each holds a reference.  Its state moves
 * PENDING -> RUNNING -> FINISHED | FAILED, or PENDING -> CANCELLED, under
 * the future's lock (one of a few striped mutexes: a future costs no mutex
 * of its own).  The state is also an atomic, so readers poll it lock-free.
 *
 * One message slot carries the call until a worker starts it, then the
 * outcome (values, or the error value plus a traceback).  The owning state
 * decodes the outcome once, keeps the Lua values in the object's user value
 * and frees the bytes: a finished future holds only its values.
 *
 * Completion, under the future's lock, wakes every registered waiter and,
 * if callbacks were added, queues the future on its owner's callback queue;
 * the owner runs them in its own state (owner.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "clock.h"
#include "core.h"
#include "future.h"
#include "transfer.h"
#include "wait.h"

#define NSTRIPES 64
/* Adaptive: the critical sections are a few instructions long. */
static pthread_mutex_t stripes[NSTRIPES] = {[0 ... NSTRIPES - 1] = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP};
static const char k_future, k_cbfuts;
#define FUTURE_KEY (&k_future)
#define CBFUTS (&k_cbfuts)   /* lightuserdata(fut) -> Future, while callbacks are due */

static pthread_mutex_t *stripe(fut_t *f) { return &stripes[((uintptr_t)f >> 6) % NSTRIPES]; }
void fut_lock(fut_t *f) { pthread_mutex_lock(stripe(f)); }
void fut_unlock(fut_t *f) { pthread_mutex_unlock(stripe(f)); }

fut_t *fut_new(void) {
  fut_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  atomic_init(&f->refs, 1);
  atomic_init(&f->state, F_PENDING);
  msg_init(&f->msg);
  return f;
}

void fut_ref(fut_t *f) { atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); }

void fut_unref(fut_t *f) {
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
  msg_free(&f->msg);
  free(f->traceback);
  owner_unref(f->cb_owner);
  free(f);
}

/* With the future locked and its new state stored: wake and queue. */
static void notify(fut_t *f) {
  for (watch_t *w = f->watchers, *next; w; w = next) {
    next = w->next;
    w->linked = 0;
    waiter_notify(w);
  }
  f->watchers = NULL;
  if (f->cb_owner) owner_queue_callbacks(f->cb_owner, f);
}

int fut_set_running(fut_t *f) {
  fut_lock(f);
  int ok = atomic_load(&f->state) == F_PENDING;
  if (ok) atomic_store(&f->state, F_RUNNING);
  fut_unlock(f);
  return ok;
}

int fut_cancel(fut_t *f) {
  fut_lock(f);
  int st = atomic_load(&f->state);
  if (st == F_PENDING) {
    msg_free(&f->msg);
    atomic_store(&f->state, F_CANCELLED);
    notify(f);
    st = F_CANCELLED;
  }
  fut_unlock(f);
  return st == F_CANCELLED;
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

/* ---------------------------------------------------------------- Lua side */

/* Argument 1 of a method or metamethod, each of which has the metatable
 * as upvalue 1: one comparison, no registry lookup. */
static fut_box *self_box(lua_State *L) {
  fut_box *b = core_testudata_mt(L, 1, lua_upvalueindex(1));
  if (!b) luaL_typeerror(L, 1, FUTURE_MT);
  return b;
}

/* b, if its Future is not finalized yet (a finalizer elsewhere may bring
 * one back after its __gc ran). */
static fut_box *alive(lua_State *L, fut_box *b) {
  if (!b->f) luaL_error(L, "the future was garbage-collected");
  return b;
}

static fut_box *self(lua_State *L) { return alive(L, self_box(L)); }

static fut_t *self_fut(lua_State *L) { return self(L)->f; }

fut_t *fut_check(lua_State *L, int idx) {
  return alive(L, core_checkudata(L, idx, FUTURE_KEY, FUTURE_MT))->f;
}

void fut_push_metatable(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, FUTURE_KEY); }

fut_box *fut_push_new(lua_State *L, int mt) {
  fut_box *b = lua_newuserdatauv(L, sizeof *b, 2);  /* 1: outcome, 2: callbacks */
  b->f = NULL;
  b->single = 0;
  if (mt) {
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
  } else {
    core_setmetatable(L, FUTURE_KEY);
  }
  if (!(b->f = fut_new())) luaL_error(L, "not enough memory");
  return b;
}

/* The outcome as a Lua table {n = count, ...; err = true if failed,
 * tb = traceback}: decoded once, then the bytes are freed. */
static void push_outcome(lua_State *L, int idx, fut_t *f) {
  idx = lua_absindex(L, idx);
  fut_box *b = lua_touserdata(L, idx);
  if (b->single) {   /* one returned value, kept as is: make it a table */
    lua_createtable(L, 1, 1);
    lua_getiuservalue(L, idx, 1);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, 1);
    lua_setfield(L, -2, "n");
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, 1);
    b->single = 0;
    return;
  }
  if (lua_getiuservalue(L, idx, 1) == LUA_TTABLE) return;
  lua_pop(L, 1);
  char err[TR_ERRLEN];
  size_t pos = 0;
  int base = lua_gettop(L);
  int n = tr_decode(L, &f->msg, &pos, !f->broken_kind, err);
  int outcome = f->outcome;
  if (n < 0 || (outcome != OUT_VALUES && n != 1)) {
    lua_settop(L, base);
    core_push_error(L, f->broken_kind ? "BrokenProcessPool" : "TransferError",
                    n < 0 ? err : "malformed outcome");
    n = 1;
    outcome = OUT_ERROR;
  } else if (outcome == OUT_TRANSFER || outcome == OUT_BROKEN) {
    const char *cls = outcome == OUT_TRANSFER ? "TransferError"
                    : f->broken_kind ? "BrokenProcessPool" : "BrokenThreadPool";
    core_push_error(L, cls, lua_tostring(L, -1));
    lua_remove(L, -2);
  }
  lua_createtable(L, n, 3);
  lua_insert(L, base + 1);
  for (int i = n; i >= 1; i--) lua_rawseti(L, base + 1, i);
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  if (outcome != OUT_VALUES) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "err");
  }
  if (f->traceback) {
    lua_pushstring(L, f->traceback);
    lua_setfield(L, -2, "tb");
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 1);
  msg_free(&f->msg);
}

void fut_fail_local(lua_State *L, int idx, fut_box *b) {
  idx = lua_absindex(L, idx);
  lua_createtable(L, 1, 2);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, 1);
  lua_setfield(L, -2, "n");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "err");
  lua_setiuservalue(L, idx, 1);
  tr_msg empty;
  msg_init(&empty);
  fut_complete(b->f, OUT_ERROR, &empty, NULL);
  msg_free(&empty);
}

/* nil: forever (-1); a number: seconds from now, negative counts as 0. */
static double opt_deadline(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return -1;
  lua_Number t = luaL_checknumber(L, arg);
  luaL_argcheck(L, t == t, arg, "timeout is NaN");
  if (t < 0) t = 0;
  return clk_now() + t;
}

/* Waits for the future at stack index 1 to be done; raises on timeout. */
static fut_t *await(lua_State *L) {
  fut_t *f = self_fut(L);
  double deadline = opt_deadline(L, 2);
  if (!fut_done(atomic_load(&f->state)) && wait_one(L, f, deadline) == OWNER_TIMEOUT)
    core_error(L, "TimeoutError", "the future did not complete in time");
  /* Its own callbacks run before the caller goes on.  The thread that
   * completed it queues them after setting the state, both under the
   * future's lock: taking that lock once waits for the queueing. */
  if (f->cb_owner) { fut_lock(f); fut_unlock(f); }
  owner_run_callbacks(L);
  if (atomic_load(&f->state) == F_CANCELLED) core_error(L, "CancelledError", "the future was cancelled");
  return f;
}

/* Fast path: a call that returned one value and holds no outcome table
 * yet keeps that value itself as its user value (no table allocated). */
static int single_result(lua_State *L, fut_box *b) {
  fut_t *f = b->f;
  if (b->single) { lua_getiuservalue(L, 1, 1); return 1; }
  if (f->outcome != OUT_VALUES || f->traceback) return 0;
  int stored = lua_getiuservalue(L, 1, 1) != LUA_TNIL;   /* an outcome table */
  lua_pop(L, 1);
  if (stored) return 0;
  char err[TR_ERRLEN];
  size_t pos = 0;
  int top = lua_gettop(L);
  int n = tr_decode(L, &f->msg, &pos, !f->broken_kind, err);
  if (n == 1) {
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 1);
    b->single = 1;
    msg_free(&f->msg);
    return 1;
  }
  lua_settop(L, top);
  return 0;
}

static int l_result(lua_State *L) {
  fut_t *f = await(L);
  lua_settop(L, 1);
  fut_box *b = lua_touserdata(L, 1);
  if (atomic_load(&f->state) == F_FINISHED && single_result(L, b)) return 1;
  push_outcome(L, 1, f);
  lua_getfield(L, 2, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  if (lua_getfield(L, 2, "err") != LUA_TNIL) {
    lua_rawgeti(L, 2, 1);
    return lua_error(L);
  }
  lua_pop(L, 1);
  for (int i = 1; i <= n; i++) lua_rawgeti(L, 2, i);
  return n;
}

static int l_exception(lua_State *L) {
  fut_t *f = await(L);
  lua_settop(L, 1);
  push_outcome(L, 1, f);
  if (lua_getfield(L, 2, "err") == LUA_TNIL) return 1;
  lua_rawgeti(L, 2, 1);
  return 1;
}

static int l_traceback(lua_State *L) {
  fut_t *f = self_fut(L);
  if (atomic_load(&f->state) != F_FAILED) { lua_pushnil(L); return 1; }
  push_outcome(L, 1, f);
  lua_getfield(L, -1, "tb");
  return 1;
}

static int l_cancel(lua_State *L) {
  lua_pushboolean(L, fut_cancel(self_fut(L)));
  owner_run_callbacks(L);
  return 1;
}

static int l_cancelled(lua_State *L) {
  lua_pushboolean(L, atomic_load(&self_fut(L)->state) == F_CANCELLED);
  return 1;
}

static int l_running(lua_State *L) {
  lua_pushboolean(L, atomic_load(&self_fut(L)->state) == F_RUNNING);
  return 1;
}

static int l_done(lua_State *L) {
  lua_pushboolean(L, fut_done(atomic_load(&self_fut(L)->state)));
  return 1;
}

static int tostring_p(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Reports the error value at the top (popped) with warn.  Never raises: a
 * __tostring that fails must not unwind a wait whose waiter is on the C
 * stack, nor skip the callbacks after this one. */
static void warn_error(lua_State *L, const char *what) {
  lua_pushcfunction(L, tostring_p);
  lua_insert(L, -2);
  int ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING;
  lua_warning(L, what, 1);
  lua_warning(L, ok ? lua_tostring(L, -1) : "(error object with no string form)", 0);
  lua_pop(L, 1);
}

/* Runs the callbacks stored in the Future at idx, once; errors go to warn,
 * but a Ctrl-C that stopped one only sets *interrupted, after the others
 * ran.  Returns how many ran. */
static int run_stored(lua_State *L, int idx, int *interrupted) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, idx, 2) != LUA_TTABLE) { lua_pop(L, 1); return 0; }
  lua_pushnil(L);
  lua_setiuservalue(L, idx, 2);
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 0, 0) == LUA_OK) continue;
    if (owner_is_interrupt(L, -1)) { *interrupted = 1; lua_pop(L, 1); }
    else warn_error(L, "futures: error in a done callback: ");
  }
  lua_pop(L, 1);
  return (int)n;
}

static int run_callbacks_p(lua_State *L) {
  fut_t *f = lua_touserdata(L, 1);
  int n = 0, interrupted = 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, CBFUTS);
  lua_pushlightuserdata(L, f);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    lua_pushlightuserdata(L, f);
    lua_pushnil(L);
    lua_rawset(L, -4);
    n = run_stored(L, -1, &interrupted);
  }
  lua_pushinteger(L, n);
  lua_pushboolean(L, interrupted);
  return 2;
}

/* Called by the owner for each future taken off its callback queue, from
 * inside blocking calls: runs protected, so that it never raises.  Returns
 * how many callbacks ran; sets *interrupted as run_stored does. */
int fut_run_callbacks(lua_State *L, fut_t *f, int *interrupted) {
  int n = 0;
  lua_pushcfunction(L, run_callbacks_p);
  lua_pushlightuserdata(L, f);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) warn_error(L, "futures: cannot run done callbacks: ");
  else {
    n = (int)lua_tointeger(L, -2);
    if (lua_toboolean(L, -1)) *interrupted = 1;
    lua_pop(L, 2);
  }
  fut_unref(f);
  return n;
}

static int l_add_done_callback(lua_State *L) {
  fut_t *f = self_fut(L);
  luaL_checkany(L, 2);
  if (!lua_isfunction(L, 2) && luaL_getmetafield(L, 2, "__call") == LUA_TNIL)
    luaL_typeerror(L, 2, "callable");
  lua_settop(L, 2);
  /* Append to the stored list first: order is the order of adding. */
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  owner_t *o = owner_get(L);
  int done;
  fut_lock(f);
  done = fut_done(atomic_load(&f->state));
  if (!done && !f->cb_owner) {
    owner_ref(o);
    f->cb_owner = o;
  }
  fut_unlock(f);
  if (done) {
    int interrupted = 0;
    run_stored(L, 1, &interrupted);
    if (interrupted) owner_raise_interrupt(L);
  } else {
    lua_rawgetp(L, LUA_REGISTRYINDEX, CBFUTS);
    lua_pushlightuserdata(L, f);
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
  }
  return 0;
}

static int l_set_running_or_notify_cancel(lua_State *L) {
  fut_t *f = self_fut(L);
  if (fut_set_running(f)) { lua_pushboolean(L, 1); return 1; }
  if (atomic_load(&f->state) == F_CANCELLED) { lua_pushboolean(L, 0); return 1; }
  return core_error(L, "InvalidStateError", "the future is already running or done");
}

static void check_settable(lua_State *L, fut_t *f) {
  if (fut_done(atomic_load(&f->state)))
    core_error(L, "InvalidStateError", "the future is already done");
}

static int l_set_result(lua_State *L) {
  fut_box *b = self(L);
  check_settable(L, b->f);
  int n = lua_gettop(L) - 1;
  lua_createtable(L, n, 1);
  for (int i = 1; i <= n; i++) { lua_pushvalue(L, i + 1); lua_rawseti(L, -2, i); }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  lua_setiuservalue(L, 1, 1);
  tr_msg empty;
  msg_init(&empty);
  fut_complete(b->f, OUT_LOCAL, &empty, NULL);
  owner_run_callbacks(L);
  return 0;
}

static int l_set_exception(lua_State *L) {
  fut_box *b = self(L);
  /* nil would read as "returned" from exception() */
  luaL_argexpected(L, !lua_isnoneornil(L, 2), 2, "error value (not nil)");
  check_settable(L, b->f);
  lua_settop(L, 2);
  fut_fail_local(L, 1, b);
  owner_run_callbacks(L);
  return 0;
}

/* <Future at 0x55d0 state=finished returned number> */
static int l_tostring(lua_State *L) {
  fut_t *f = self_fut(L);
  static const char *const names[] = {"pending", "running", "cancelled", "finished", "finished"};
  int st = atomic_load(&f->state);
  if (st < F_FINISHED) {
    lua_pushfstring(L, "<Future at %p state=%s>", (void *)f, names[st]);
    return 1;
  }
  push_outcome(L, 1, f);
  int out = lua_gettop(L);
  int failed = lua_getfield(L, out, "err") != LUA_TNIL;
  lua_getfield(L, out, "n");
  int none = lua_tointeger(L, -1) == 0;
  lua_rawgeti(L, out, 1);
  const char *what = luaL_typename(L, -1);
  if (luaL_getmetafield(L, -1, "__name") == LUA_TSTRING) what = lua_tostring(L, -1);
  if (!failed && none) what = "nothing";
  lua_pushfstring(L, "<Future at %p state=finished %s %s>", (void *)f,
                  failed ? "raised" : "returned", what);
  return 1;
}

static int l_gc(lua_State *L) {
  fut_box *b = self_box(L);
  if (b->f) fut_unref(b->f);
  b->f = NULL;
  return 0;
}

static int l_new(lua_State *L) {
  fut_push_new(L, lua_upvalueindex(1));
  return 1;
}

static const luaL_Reg methods[] = {
  {"result", l_result},
  {"exception", l_exception},
  {"traceback", l_traceback},
  {"cancel", l_cancel},
  {"cancelled", l_cancelled},
  {"running", l_running},
  {"done", l_done},
  {"add_done_callback", l_add_done_callback},
  {"set_running_or_notify_cancel", l_set_running_or_notify_cancel},
  {"set_result", l_set_result},
  {"set_exception", l_set_exception},
  {NULL, NULL}
};

void fut_open(lua_State *L) {
  if (core_newmetatable(L, FUTURE_KEY, FUTURE_MT)) {
    int mt = lua_gettop(L);
    luaL_newlibtable(L, methods);
    lua_pushvalue(L, mt);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, mt, "__index");
    lua_pushvalue(L, mt);
    lua_pushcclosure(L, l_tostring, 1);
    lua_setfield(L, mt, "__tostring");
    lua_pushvalue(L, mt);
    lua_pushcclosure(L, l_gc, 1);
    lua_setfield(L, mt, "__gc");
  }
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, CBFUTS) != LUA_TTABLE) {
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, CBFUTS);
  }
  lua_pop(L, 1);
  fut_push_metatable(L);
  lua_pushcclosure(L, l_new, 1);
  lua_setfield(L, -2, "Future");
}
