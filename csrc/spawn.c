/* Coroutines and event loops: futures.spawn runs a function as a
 * coroutine of the calling state whose library waits suspend it
 * (suspend.c), with a Future for its outcome; futures.run spawns and then
 * waits for that Future, so the state's blocking wait drives every
 * coroutine, callback and timer until it is done; futures.fd and
 * futures.timeout let a foreign loop drive them with poll(). */
#include <stdio.h>
#include <stdlib.h>
#include "lauxlib.h"
#include "future.h"
#include "luax.h"
#include "owner.h"
#include "spawn.h"
#include "suspend.h"

static void close_thread(lua_State *co, lua_State *L) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  lua_closethread(co, L);
#else
  (void)L;
  lua_resetthread(co);
#endif
}

/* The coroutine ended: its values or its error complete the Future (the
 * record's value), unless it was cancelled meanwhile. */
static void ended(lua_State *L, susp_t *s, lua_State *co, int st) {
  susp_push_ud(L, s);
  int fidx = lua_gettop(L);
  if (st == LUA_OK) {
    int n = lua_gettop(co);
    luaL_checkstack(L, n + 4, "too many results");
    lua_xmove(co, L, n);
    future_finish_local(L, fidx, n, 0, NULL);
  } else {
    /* A coroutine that died keeps its to-be-closed variables open until
     * it is reset; its traceback is taken before. */
    const char *msg = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : NULL;
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(co, -1));
    luaL_traceback(L, co, msg, 0);
    luaL_gsub(L, lua_tostring(L, -1), "\nstack traceback:", "\ncoroutine traceback:");
    lua_remove(L, -2);
    if (lua_type(co, -1) != LUA_TSTRING) lua_remove(L, -2);
    lua_xmove(co, L, 1);                 /* the error value */
    close_thread(co, L);
    const char *tb = lua_tostring(L, -2);
    future_finish_local(L, fidx, 1, 1, tb);
    lua_pop(L, 1);                       /* the traceback */
  }
  lua_settop(L, fidx - 1);
}

static void stop(fut_t *f) { susp_cancel(f->stop_arg); }

/* cancel() stops a spawned coroutine at its wait: no interrupt needed. */
static const fut_stopper stopper = {stop, 1};

/* futures.spawn(fn, ...) -> Future */
/* Upvalues: the Future metatable and the state's owner, at hand. */
static int l_spawn(lua_State *L) {
  luax_checkcallable(L, 1);
  /* raises in a finalizer after the state's, before anything is made */
  owner_t *o = owner_of_box(L, lua_upvalueindex(2));
  int nargs = lua_gettop(L) - 1;
  future_box *b = future_push_new_ext(L, lua_upvalueindex(1), susp_size(), susp_free);
  int fidx = lua_gettop(L);
  atomic_store(&b->f->state, F_RUNNING);   /* no one else has it yet: no lock */
  lua_pushvalue(L, 1);
  susp_t *s = susp_new(L, o, fidx, FUTURE_EXTRA_UV, future_extra(b), ended);
  b->f->stop_arg = s;
  b->f->stopper = &stopper;
  for (int i = 2; i <= nargs + 1; i++) lua_pushvalue(L, i);
  susp_resume(L, s, nargs);               /* up to its first wait */
  lua_settop(L, fidx);
  return 1;
}

static int run_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);   /* the results of f:result() */
}

/* futures.run(fn, ...) -> fn's values: spawn, then f:result().  On the
 * main thread (or any coroutine the library did not spawn) that wait
 * drives everything; inside a spawned coroutine it suspends, as any wait. */
static int l_run(lua_State *L) {
  owner_t *o = owner_get(L);
  if (o->running && !susp_current(L))
    return luaL_error(L, "futures.run cannot wait inside a done-callback or a resumed coroutine's "
                         "non-yieldable code: nothing would run what it waits for");
  int n = lua_gettop(L);
  lua_getfield(L, lua_upvalueindex(1), "spawn");
  lua_insert(L, 1);
  lua_call(L, n, 1);                      /* the Future */
  lua_getfield(L, 1, "result");
  lua_insert(L, 1);
  lua_callk(L, 1, LUA_MULTRET, 0, run_k);
  return run_k(L, LUA_OK, 0);
}

static int l_fd(lua_State *L) {
  lua_pushinteger(L, owner_fd(L));
  return 1;
}

static int l_timeout(lua_State *L) {
  double t = owner_timeout(L);
  if (t < 0) lua_pushnil(L);
  else lua_pushnumber(L, t);
  return 1;
}

void spawn_open(lua_State *L) {
  future_push_class(L);
  owner_push_box(L);
  lua_pushcclosure(L, l_spawn, 2);
  lua_setfield(L, -2, "spawn");
  lua_pushvalue(L, -1);                   /* run spawns through the module's spawn */
  lua_pushcclosure(L, l_run, 1);
  lua_setfield(L, -2, "run");
  static const luaL_Reg funcs[] = {
    {"fd", l_fd},
    {"timeout", l_timeout},
    {NULL, NULL}
  };
  luaL_setfuncs(L, funcs, 0);
}
