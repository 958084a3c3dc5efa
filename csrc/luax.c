/* The Lua helpers every file shares: classes of userdata, callables and
 * the library's errors.  See luax.h. */
#include <string.h>
#include "lauxlib.h"
#include "clock.h"
#include "luax.h"

static const char k_class, k_errctor, k_front;
#define CLASS_KEY (&k_class)     /* in a metatable: lightuserdata(luax_class) */
#define ERRCTOR_KEY (&k_errctor) /* in the registry: the front's constructor */
#define FRONT_KEY (&k_front)     /* in the registry: the front's chunk source */

int luax_newclass(lua_State *L, const luax_class *c) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, c) == LUA_TTABLE) return 0;
  lua_pop(L, 1);
  luaL_newmetatable(L, c->name);   /* sets __name */
  lua_pushlightuserdata(L, (void *)c);
  lua_rawsetp(L, -2, CLASS_KEY);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, c);
  return 1;
}

void luax_setclass(lua_State *L, const luax_class *c) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, c);
  lua_setmetatable(L, -2);
}

void *luax_toudata(lua_State *L, int idx, const luax_class *c) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, -1, CLASS_KEY);
  const luax_class *k = lua_touserdata(L, -1);
  lua_pop(L, 2);
  while (k && k != c) k = k->parent;
  return k ? p : NULL;
}

void *luax_checkudata(lua_State *L, int idx, const luax_class *c) {
  void *p = luax_toudata(L, idx, c);
  if (!p) luaL_typeerror(L, idx, c->name);
  return p;
}

double luax_optdeadline(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return -1;
  lua_Number t = luaL_checknumber(L, arg);
  luaL_argcheck(L, t == t, arg, "timeout is NaN");
  if (t < 0) t = 0;
  return clk_now() + t;
}

void *luax_checkself(lua_State *L, const luax_class *c) {
  void *p = lua_touserdata(L, 1);
  if (p && lua_getmetatable(L, 1)) {
    /* Two tables are the same one when their addresses are: cheaper than
     * lua_rawequal, which compares any two values. */
    int same = lua_topointer(L, -1) == lua_topointer(L, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) return p;
  }
  return luax_checkudata(L, 1, c);   /* a child class, or the error */
}

void luax_setmethods(lua_State *L, const luaL_Reg *metamethods, const luaL_Reg *methods) {
  int mt = lua_gettop(L);
  lua_pushvalue(L, mt);
  luaL_setfuncs(L, metamethods, 1);
  lua_newtable(L);
  lua_pushvalue(L, mt);
  luaL_setfuncs(L, methods, 1);
  lua_setfield(L, mt, "__index");
}

int luax_iscallable(lua_State *L, int idx) {
  if (lua_isfunction(L, idx)) return 1;
  if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

void luax_checkcallable(lua_State *L, int arg) {
  if (!luax_iscallable(L, arg)) luaL_typeerror(L, arg, "callable");
}

static const char *const class_names[] = {
  [LUAX_CANCELLED] = "CancelledError",
  [LUAX_TIMEOUT] = "TimeoutError",
  [LUAX_INVALID_STATE] = "InvalidStateError",
  [LUAX_SHUTDOWN] = "ShutdownError",
  [LUAX_TRANSFER] = "TransferError",
  [LUAX_BROKEN_THREAD] = "BrokenThreadPool",
  [LUAX_BROKEN_PROCESS] = "BrokenProcessPool",
};

void luax_push_error(lua_State *L, luax_errclass e, const char *msg) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, ERRCTOR_KEY) == LUA_TFUNCTION) {
    lua_pushstring(L, class_names[e]);
    lua_pushstring(L, msg);
    if (lua_pcall(L, 2, 1, 0) == LUA_OK) return;
  }
  lua_pop(L, 1);
  lua_pushfstring(L, "futures.%s: %s", class_names[e], msg);
}

int luax_error(lua_State *L, luax_errclass e, const char *msg) {
  luax_push_error(L, e, msg);
  return lua_error(L);
}

int luax_set_error_ctor(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TSTRING);
  lua_settop(L, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, FRONT_KEY);
  lua_rawsetp(L, LUA_REGISTRYINDEX, ERRCTOR_KEY);
  return 0;
}

void luax_push_userwhere(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, FRONT_KEY);
  const char *front = lua_tostring(L, -1);
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0 || *ar.what == 'C') continue;
    if (front && strcmp(ar.source, front) == 0) continue;
    lua_pushfstring(L, "%s:%d:", ar.short_src, ar.currentline);
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_pushliteral(L, "");
}
