/* futures.core: the C half of the module.  This file wires the pieces
 * together and holds the small module functions; each concern lives in its
 * own file (see the README's map of csrc/). */
#include <stdlib.h>
#include <unistd.h>
#include "lauxlib.h"
#include "lualib.h"
#include "arraypart.h"
#include "clock.h"
#include "core.h"
#include "futures.h"
#include "owner.h"
#include "transfer.h"

#define ERRCTOR "futures.errorctor"
#include "workerstate.h"

void core_push_error(lua_State *L, const char *cls, const char *msg) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, ERRCTOR) == LUA_TFUNCTION) {
    lua_pushstring(L, cls);
    lua_pushstring(L, msg);
    if (lua_pcall(L, 2, 1, 0) == LUA_OK) return;
  }
  lua_pop(L, 1);
  lua_pushfstring(L, "futures.%s: %s", cls, msg);
}

int core_error(lua_State *L, const char *cls, const char *msg) {
  core_push_error(L, cls, msg);
  return lua_error(L);
}

int core_newmetatable(lua_State *L, const void *key, const char *tname) {
  int fresh = luaL_newmetatable(L, tname);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
  return fresh;
}

void core_setmetatable(lua_State *L, const void *key) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
  lua_setmetatable(L, -2);
}

void *core_testudata_mt(lua_State *L, int idx, int mt) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  int same = lua_rawequal(L, -1, mt);
  lua_pop(L, 1);
  return same ? p : NULL;
}

static void *core_testudata(lua_State *L, int idx, const void *key) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
  void *p = core_testudata_mt(L, idx, lua_gettop(L));
  lua_pop(L, 1);
  return p;
}

void *core_checkudata(lua_State *L, int idx, const void *key, const char *tname) {
  void *p = core_testudata(L, idx, key);
  if (!p) luaL_typeerror(L, idx, tname);
  return p;
}

static int l_set_error_ctor(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, ERRCTOR);
  return 0;
}

static int l_cpu_count(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, clk_now());
  return 1;
}

static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s == s, 1, "not a number");
  clk_sleep(s);
  return 0;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static int l_current_worker(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, WS_NAME_KEY);
  return 1;
}

/* Test hook: copies the arguments into a private state and back, the way
 * a task's values travel, and returns the copies. */
#define MSGBOX_MT "futures.msgbox"

static int msgbox_gc(lua_State *L) {
  msg_free(luaL_checkudata(L, 1, MSGBOX_MT));
  return 0;
}

typedef struct roundtrip { tr_msg *m; char *err; int ok; } roundtrip;

static int roundtrip_there(lua_State *W) {   /* runs protected in W */
  roundtrip *r = lua_touserdata(W, 1);
  size_t pos = 0;
  int got = tr_decode(W, r->m, &pos, 1, r->err);
  if (got < 0) return 0;
  msg_free(r->m);
  tr_opts o = {1, "value #%d", 0};
  r->ok = tr_encode(W, 2, got, r->m, &o, r->err);
  return 0;
}

static int l_roundtrip(lua_State *L) {
  int n = lua_gettop(L);
  char err[TR_ERRLEN];
  tr_opts o = {1, "argument #%d", 0};
  tr_msg *m = lua_newuserdatauv(L, sizeof *m, 0);   /* anchored at 1 */
  msg_init(m);
  luaL_setmetatable(L, MSGBOX_MT);
  lua_insert(L, 1);
  if (!tr_encode(L, 2, n, m, &o, err)) return core_error(L, "TransferError", err);
  char *path = ws_package_field(L, "path"), *cpath = ws_package_field(L, "cpath");
  ws_config cfg = {path, cpath, "roundtrip"};
  lua_State *W = ws_new(&cfg, err, sizeof err);
  free(path);
  free(cpath);
  if (!W) return luaL_error(L, "%s", err);
  roundtrip r = {m, err, 0};
  lua_pushcfunction(W, roundtrip_there);
  lua_pushlightuserdata(W, &r);
  if (lua_pcall(W, 1, 0, 0) != LUA_OK) snprintf(err, TR_ERRLEN, "%s", lua_tostring(W, -1));
  lua_close(W);
  if (!r.ok) return core_error(L, "TransferError", err);
  lua_settop(L, 1);
  size_t pos = 0;
  int got = tr_decode(L, m, &pos, 1, err);
  if (got < 0) return core_error(L, "TransferError", err);
  return got;
}

/* Test hook: _direct_arrays(on) turns the codec's direct access to array
 * parts off or back on for this process; returns whether it is on. */
static int l_direct_arrays(lua_State *L) {
  if (!lua_isnone(L, 1)) ap_enable(lua_toboolean(L, 1));
  lua_pushboolean(L, ap_enabled());
  return 1;
}

static const luaL_Reg funcs[] = {
  {"cpu_count", l_cpu_count},
  {"monotonic", l_monotonic},
  {"sleep", l_sleep},
  {"current_worker", l_current_worker},
  {"getpid", l_getpid},
  {"_set_error_ctor", l_set_error_ctor},
  {"_roundtrip", l_roundtrip},
  {"_direct_arrays", l_direct_arrays},
  {NULL, NULL}
};

FUTURES_API int luaopen_futures_core(lua_State *L) {
  tr_open(L);
  owner_get(L);   /* first, so it is finalized last: it waits for the executors */
  luaL_newlib(L, funcs);
  if (luaL_newmetatable(L, MSGBOX_MT)) {
    lua_pushcfunction(L, msgbox_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  fut_open(L);
  wait_open(L);
  tpool_open(L);
  ppool_open(L);
  lua_pushliteral(L, CORE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
