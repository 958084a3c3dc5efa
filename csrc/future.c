/* The Lua Future object around a C future (fut.c).
 *
 * The owning state decodes a finished call's outcome once, keeps the Lua
 * values in the object's user value 1 and frees the bytes: a finished
 * future holds only its values.  Done-callbacks are kept in user value 2;
 * once the future completes, fut.c posts its callback job to the owner,
 * which runs them here, in the owning state (callbacks_ops).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "clock.h"
#include "future.h"
#include "luax.h"
#include "suspend.h"
#include "transfer.h"
#include "waiter.h"

static const luax_class future_class = {FUTURE_MT, NULL};
static const char k_cbfuts;
#define CBFUTS (&k_cbfuts)   /* lightuserdata(fut) -> Future, while callbacks are due */


/* Argument 1 of a method or metamethod. */
static future_box *self_box(lua_State *L) { return luax_checkself(L, &future_class); }

/* b, if its Future is not finalized yet (a finalizer elsewhere may bring
 * one back after its __gc ran). */
static future_box *alive(lua_State *L, future_box *b) {
  if (!b->f) luaL_error(L, "the future was garbage-collected");
  return b;
}

static future_box *self(lua_State *L) { return alive(L, self_box(L)); }

static fut_t *self_fut(lua_State *L) { return self(L)->f; }

void future_push_class(lua_State *L) { luax_newclass(L, &future_class); }

fut_t *future_check(lua_State *L, int idx) {
  return alive(L, luax_checkudata(L, idx, &future_class))->f;
}

/* future_extra's offset: the box, rounded up as Lua aligns a userdata. */
#define ALIGN _Alignof(max_align_t)
#define EXTRA_AT ((sizeof(future_box) + ALIGN - 1) / ALIGN * ALIGN)

void *future_extra(future_box *b) { return (char *)b + EXTRA_AT; }

future_box *future_push_new_ext(lua_State *L, int mt, size_t extra, void (*fin)(void *)) {
  /* 1: outcome, 2: callbacks, FUTURE_EXTRA_UV: the extra's */
  future_box *b = lua_newuserdatauv(L, extra ? EXTRA_AT + extra : sizeof *b, extra ? FUTURE_EXTRA_UV : 2);
  b->f = NULL;
  b->single = 0;
  b->fin = NULL;
  if (mt) {
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
  } else {
    luax_setclass(L, &future_class);
  }
  if (!(b->f = fut_new())) luaL_error(L, "not enough memory");
  if (extra) memset(future_extra(b), 0, extra);   /* what fin sees if its maker raises */
  b->fin = fin;
  return b;
}

future_box *future_push_new(lua_State *L, int mt) { return future_push_new_ext(L, mt, 0, NULL); }

/* A task failed with "... (global 'name')" while the caller has a global
 * of that name: the usual surprise of a first pool.  The error (a string,
 * at the top) says why and what to do. */
static void hint_global(lua_State *L) {
  const char *s = lua_tostring(L, -1), *g = strstr(s, "(global '");
  if (!g) return;
  g += sizeof "(global '" - 1;
  const char *end = strchr(g, '\'');
  if (!end || end == g || end - g > 200) return;
  lua_pushglobaltable(L);
  lua_pushlstring(L, g, (size_t)(end - g));
  lua_pushvalue(L, -1);
  int seen = lua_rawget(L, -3) != LUA_TNIL;   /* raw: no user code here */
  lua_pop(L, 1);
  if (seen) {
    lua_pushfstring(L, "%s (the caller has a global '%s', but a worker has globals of its own: "
                    "pass it as an argument, capture it in a local, or set it in an initializer)",
                    s, lua_tostring(L, -1));
    lua_replace(L, -4);
  }
  lua_pop(L, 2);
}

/* The outcome as a Lua table {n = count, ...; err = true if failed,
 * tb = traceback}: decoded once, then the bytes are freed. */
static void push_outcome(lua_State *L, int idx, fut_t *f) {
  idx = lua_absindex(L, idx);
  future_box *b = lua_touserdata(L, idx);
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
  if (f->outcome == OUT_TIMEOUT) {
    /* f->msg is the call, maybe still being read by its worker: untouched. */
    lua_createtable(L, 1, 2);
    luax_push_error(L, LUAX_TIMEOUT, "the call ran longer than the executor's call_timeout");
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, 1);
    lua_setfield(L, -2, "n");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "err");
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, 1);
    return;
  }
  char err[TR_ERRLEN];
  size_t pos = 0;
  int base = lua_gettop(L);
  int n = tr_decode(L, &f->msg, &pos, !f->broken_kind, err);
  int outcome = f->outcome;
  luax_errclass broken = f->broken_kind ? LUAX_BROKEN_PROCESS : LUAX_BROKEN_THREAD;
  if (n < 0 || (outcome != OUT_VALUES && n != 1)) {
    lua_settop(L, base);
    luax_push_error(L, f->broken_kind ? LUAX_BROKEN_PROCESS : LUAX_TRANSFER,
                    n < 0 ? err : "malformed outcome");
    n = 1;
    outcome = OUT_ERROR;
  } else if (outcome == OUT_TRANSFER || outcome == OUT_BROKEN) {
    luax_push_error(L, outcome == OUT_TRANSFER ? LUAX_TRANSFER : broken, lua_tostring(L, -1));
    lua_remove(L, -2);
  } else if (outcome == OUT_ERROR && lua_type(L, -1) == LUA_TSTRING) {
    hint_global(L);
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

void future_finish_local(lua_State *L, int idx, int n, int failed, const char *traceback) {
  idx = lua_absindex(L, idx);
  future_box *b = lua_touserdata(L, idx);
  fut_t *f = b->f;
  if (fut_done(atomic_load(&f->state))) {   /* cancelled meanwhile: nobody wants them */
    lua_pop(L, n);
    return;
  }
  if (n == 1 && !failed && !traceback) {   /* one value: kept as is, no table */
    lua_setiuservalue(L, idx, 1);
    b->single = 1;
    tr_msg empty;
    msg_init(&empty);
    fut_complete(f, OUT_LOCAL, &empty, NULL);
    return;
  }
  lua_createtable(L, n, 3);
  lua_insert(L, -n - 1);
  for (int i = n; i >= 1; i--) lua_rawseti(L, -i - 1, i);
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  if (failed) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "err");
  }
  if (traceback) {
    lua_pushstring(L, traceback);
    lua_setfield(L, -2, "tb");
  }
  lua_setiuservalue(L, idx, 1);
  tr_msg empty;
  msg_init(&empty);
  fut_complete(f, failed ? OUT_ERROR : OUT_LOCAL, &empty, traceback ? strdup(traceback) : NULL);
  msg_free(&empty);
}

static int run_callbacks_p(lua_State *L);
static void warn_error(lua_State *L, const char *what);

/* A future done already runs its own due callbacks before result() or
 * exception() returns (no other future's, and none inside a callback:
 * they never nest); its queued job then finds nothing left to run. */
static void run_own_callbacks(lua_State *L, fut_t *f) {
  fut_settled_state(f);
  if (owner_get(L)->running) return;
  lua_pushcfunction(L, run_callbacks_p);
  lua_pushlightuserdata(L, f);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) { warn_error(L, "futures: cannot run done callbacks: "); return; }
  int interrupted = lua_toboolean(L, -1);
  lua_pop(L, 2);
  if (interrupted) owner_raise_interrupt(L);
}

static void raise_if_cancelled(lua_State *L, fut_t *f) {
  if (atomic_load(&f->state) == F_CANCELLED) luax_error(L, LUAX_CANCELLED, "the future was cancelled");
}

/* Waits for the Future at 1 to be done (timeout at 2); raises on timeout.
 * A future done already returns at once, running nothing else.  In a
 * spawned coroutine it suspends, its deadline at 3, and k continues
 * the method once woken (status LUA_YIELD). */
static fut_t *await(lua_State *L, int status, lua_KFunction k) {
  /* Resumed: its class was checked before it yielded. */
  fut_t *f = status == LUA_OK ? self_fut(L) : alive(L, lua_touserdata(L, 1))->f;
  double deadline = status == LUA_OK ? luax_optdeadline(L, 2) : -1;   /* checked even if done */
  if (fut_done(atomic_load(&f->state))) {
    if (f->cb_owner) run_own_callbacks(L, f);
    raise_if_cancelled(L, f);
    return f;
  }
  susp_t *s = susp_current(L);
  if (!s) {
    if (wait_one(L, f, deadline) == OWNER_TIMEOUT)
      luax_error(L, LUAX_TIMEOUT, "the future did not complete in time");
    fut_settled_state(f);   /* its own callbacks run before the caller goes on */
    owner_run_jobs(L);
    raise_if_cancelled(L, f);
    return f;
  }
  if (status == LUA_OK) {
    lua_settop(L, 2);
    lua_pushnumber(L, deadline);   /* 3: for the continuation */
  }
  deadline = lua_tonumber(L, 3);
  if (deadline >= 0 && clk_now() >= deadline)
    luax_error(L, LUAX_TIMEOUT, "the future did not complete in time");
  if (!susp_watch(s, f)) {   /* done meanwhile */
    raise_if_cancelled(L, f);
    return f;
  }
  susp_wait(L, s, deadline, 0, k);   /* yields: never returns */
  return NULL;
}

/* Fast path: a call that returned one value and holds no outcome table
 * yet keeps that value itself as its user value (no table allocated). */
static int single_result(lua_State *L, future_box *b) {
  fut_t *f = b->f;
  if (b->single) { lua_getiuservalue(L, 1, 1); return 1; }
  if (f->outcome != OUT_VALUES || f->traceback) return 0;
  int stored = lua_getiuservalue(L, 1, 1) != LUA_TNIL;   /* an outcome table */
  lua_pop(L, 1);
  /* One value: the count is the byte 1.  Anything else is decoded once,
   * by the general path (a slab can only be taken once). */
  if (stored || f->msg.len < 2 || f->msg.data[0] != 1) return 0;
  char err[TR_ERRLEN];
  size_t pos = 0;
  int top = lua_gettop(L);
  /* A scalar skips the decoder's set-up: the same bytes, the same value. */
  int n = tr_decode_scalar(L, &f->msg) ? 1 : tr_decode(L, &f->msg, &pos, !f->broken_kind, err);
  if (n == 1) {
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 1);
    b->single = 1;
    msg_clear(&f->msg);   /* inline bytes, nearly always: no call */
    return 1;
  }
  lua_settop(L, top);
  if (n < 0 && !f->broken_kind) {   /* keep the reason: a slab read cannot be read again */
    msg_free(&f->msg);
    if (tr_encode_string(&f->msg, err, strlen(err))) f->outcome = OUT_TRANSFER;
  }
  return 0;
}

/* A string error re-raised by result() carries the worker's stack after
 * it, as Python shows the remote traceback: [msg, tb] -> [msg + stack]. */
static void with_traceback(lua_State *L) {
  const char *tb = lua_tostring(L, -1), *stack = strstr(tb, "\nstack traceback:");
  if (stack) {
    lua_pushfstring(L, "%s\nworker traceback:%s", lua_tostring(L, -2), stack + sizeof "\nstack traceback:" - 1);
    lua_replace(L, -3);
  } else if ((stack = strstr(tb, "\ncoroutine traceback:"))) {   /* futures.spawn's own */
    lua_pushfstring(L, "%s%s", lua_tostring(L, -2), stack);
    lua_replace(L, -3);
  }
  lua_pop(L, 1);
}

static int result_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  fut_t *f = await(L, status, result_k);
  lua_settop(L, 1);
  future_box *b = lua_touserdata(L, 1);
  if (atomic_load(&f->state) == F_FINISHED && single_result(L, b)) return 1;
  push_outcome(L, 1, f);
  lua_getfield(L, 2, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  if (lua_getfield(L, 2, "err") != LUA_TNIL) {
    lua_rawgeti(L, 2, 1);
    if (lua_type(L, -1) == LUA_TSTRING && lua_getfield(L, 2, "tb") == LUA_TSTRING) with_traceback(L);
    return lua_error(L);
  }
  lua_pop(L, 1);
  for (int i = 1; i <= n; i++) lua_rawgeti(L, 2, i);
  return n;
}

static int l_result(lua_State *L) { return result_k(L, LUA_OK, 0); }

static int exception_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  fut_t *f = await(L, status, exception_k);
  lua_settop(L, 1);
  push_outcome(L, 1, f);
  if (lua_getfield(L, 2, "err") == LUA_TNIL) return 1;
  lua_rawgeti(L, 2, 1);
  return 1;
}

static int l_exception(lua_State *L) { return exception_k(L, LUA_OK, 0); }

static int l_traceback(lua_State *L) {
  fut_t *f = self_fut(L);
  if (atomic_load(&f->state) != F_FAILED) { lua_pushnil(L); return 1; }
  push_outcome(L, 1, f);
  lua_getfield(L, -1, "tb");
  return 1;
}

/* f:cancel([interrupt]) */
static int l_cancel(lua_State *L) {
  fut_t *f = self_fut(L);
  lua_pushboolean(L, fut_cancel(f, lua_toboolean(L, 2)));
  owner_run_jobs(L);
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
  lua_pushboolean(L, fut_done(fut_settled_state(self_fut(L))));
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

static fut_t *job_fut(owner_job *j) { return (fut_t *)((char *)j - offsetof(fut_t, cbjob)); }

/* The callback job of a completed future, run by the owner from inside a
 * blocking call or poll(): protected, so that it never raises. */
static int callbacks_run(lua_State *L, owner_job *j, int *interrupted) {
  fut_t *f = job_fut(j);
  int n = 0;
  lua_pushcfunction(L, run_callbacks_p);
  lua_pushlightuserdata(L, f);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) warn_error(L, "futures: cannot run done callbacks: ");
  else {
    n = (int)lua_tointeger(L, -2);
    if (lua_toboolean(L, -1)) *interrupted = 1;
    lua_pop(L, 2);
  }
  fut_unref(f);   /* the job's reference */
  return n;
}

static void callbacks_drop(owner_job *j) { fut_unref(job_fut(j)); }

static const owner_job_ops callbacks_ops = {callbacks_run, callbacks_drop};

static int l_add_done_callback(lua_State *L) {
  fut_t *f = self_fut(L);
  luax_checkcallable(L, 2);
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
  if (fut_on_done(f, owner_get(L), &callbacks_ops)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, CBFUTS);
    lua_pushlightuserdata(L, f);
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
  } else {
    int interrupted = 0;
    run_stored(L, 1, &interrupted);
    if (interrupted) owner_raise_interrupt(L);
  }
  return 0;
}

static int l_set_running_or_notify_cancel(lua_State *L) {
  fut_t *f = self_fut(L);
  if (fut_set_running(f)) { lua_pushboolean(L, 1); return 1; }
  if (atomic_load(&f->state) == F_CANCELLED) { lua_pushboolean(L, 0); return 1; }
  return luax_error(L, LUAX_INVALID_STATE, "the future is already running or done");
}

static void check_settable(lua_State *L, fut_t *f) {
  if (fut_done(atomic_load(&f->state)))
    luax_error(L, LUAX_INVALID_STATE, "the future is already done");
}

static int l_set_result(lua_State *L) {
  future_box *b = self(L);
  check_settable(L, b->f);
  future_finish_local(L, 1, lua_gettop(L) - 1, 0, NULL);
  owner_run_jobs(L);
  return 0;
}

static int l_set_exception(lua_State *L) {
  future_box *b = self(L);
  /* nil would read as "returned" from exception() */
  luaL_argexpected(L, !lua_isnoneornil(L, 2), 2, "error value (not nil)");
  check_settable(L, b->f);
  lua_settop(L, 2);
  future_finish_local(L, 1, 1, 1, NULL);
  owner_run_jobs(L);
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
  future_box *b = self_box(L);
  if (b->f) fut_unref(b->f);
  b->f = NULL;
  if (b->fin) b->fin(future_extra(b));
  b->fin = NULL;
  return 0;
}

static int l_new(lua_State *L) {
  owner_get(L);   /* raises in a finalizer after the state's: its __gc would never run */
  future_push_new(L, 0);
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

static const luaL_Reg metamethods[] = {
  {"__tostring", l_tostring},
  {"__gc", l_gc},
  {NULL, NULL}
};

void future_open(lua_State *L) {
  if (luax_newclass(L, &future_class)) luax_setmethods(L, metamethods, methods);
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, CBFUTS) != LUA_TTABLE) {
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, CBFUTS);
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "Future");
}
