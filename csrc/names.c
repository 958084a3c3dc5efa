/* Values that cross by name: a loaded module (a table in package.loaded)
 * and a C function found in one (math.sqrt).  Neither can be copied: a
 * module must stay the receiver's own table, and a C function is code at
 * an address.  The sender looks them up in a reverse map of package.loaded
 * that it keeps in the codec context; the receiver `require`s the module
 * by name and indexes it. */
#include <stdint.h>
#include <stdio.h>
#include "lauxlib.h"
#include "codec.h"

/* The map: module table -> name, C function -> {module, field}.  Rebuilt
 * when package.loaded changes, or when forced (a C function it does not
 * know may have been added to a module since). */
void names_push(lua_State *L, int ctx, int force) {
  lua_Integer sig = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int loaded = lua_gettop(L);
  lua_pushnil(L);
  /* The signature of package.loaded: its size and the identity of every
   * module, so a module required again (a new table) is noticed too. */
  while (lua_next(L, loaded)) {
    sig = (lua_Integer)((lua_Unsigned)sig * 31 + (lua_Unsigned)(uintptr_t)lua_topointer(L, -1) + 1);
    lua_pop(L, 1);
  }
  lua_rawgeti(L, ctx, CTX_NAMESSIG);
  int fresh = !force && lua_isinteger(L, -1) && lua_tointeger(L, -1) == sig;
  lua_pop(L, 1);
  if (fresh && lua_rawgeti(L, ctx, CTX_NAMES) == LUA_TTABLE) {
    lua_remove(L, loaded);
    return;
  }
  if (fresh) lua_pop(L, 1);
  lua_newtable(L);
  int names = lua_gettop(L);
  luaL_checkstack(L, 8, NULL);
  lua_pushnil(L);
  while (lua_next(L, loaded)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      int mod = lua_gettop(L);
      lua_pushvalue(L, mod);
      if (lua_rawget(L, names) == LUA_TNIL) {
        lua_pushvalue(L, mod);
        lua_pushvalue(L, mod - 1);
        lua_rawset(L, names);
      }
      lua_pop(L, 1);
      lua_pushnil(L);
      while (lua_next(L, mod)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1)) {
          lua_pushvalue(L, -1);
          if (lua_rawget(L, names) == LUA_TNIL) {
            lua_pushvalue(L, -2);
            lua_createtable(L, 2, 0);
            lua_pushvalue(L, mod - 1);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, -5);
            lua_rawseti(L, -2, 2);
            lua_rawset(L, names);
          }
          lua_pop(L, 1);
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, names);
  lua_rawseti(L, ctx, CTX_NAMES);
  lua_pushinteger(L, sig);
  lua_rawseti(L, ctx, CTX_NAMESSIG);
  lua_remove(L, loaded);
}

/* Names in a message are not NUL-terminated: printed with "%.*s". */
static int shown(size_t len) { return len > 60 ? 60 : (int)len; }

int names_push_module(lua_State *L, const char *name, size_t len, char *err) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushlstring(L, name, len);
  if (lua_rawget(L, -2) != LUA_TNIL) { lua_remove(L, -2); return 1; }
  lua_pop(L, 2);
  lua_getglobal(L, "require");
  lua_pushlstring(L, name, len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    snprintf(err, TR_ERRLEN, "cannot load module '%.*s' here: %.150s", shown(len), name,
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

int names_push_cfunction(lua_State *L, const char *mod, size_t mlen, const char *field,
                         size_t flen, char *err) {
  if (!names_push_module(L, mod, mlen, err)) return 0;
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushlstring(L, field, flen);
    lua_rawget(L, -2);
    lua_remove(L, -2);
  }
  if (!lua_iscfunction(L, -1)) {
    snprintf(err, TR_ERRLEN, "function %.*s.%.*s is not loaded here", shown(mlen), mod,
             shown(flen), field);
    return 0;
  }
  return 1;
}
