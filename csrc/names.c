/* Values that cross by name: a loaded module (a table in package.loaded),
 * a C function found in one (math.sqrt) and a metatable found in one (a
 * class: geom.Vec).  None can be copied: a module must stay the receiver's
 * own table, a C function is code at an address, and a class must stay
 * one table so that getmetatable(v) == geom.Vec holds for what comes
 * back.  The sender looks them up in a reverse map of package.loaded
 * that it keeps in the codec context; the receiver `require`s the module
 * by name and indexes it. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "lauxlib.h"
#include "codec.h"

/* The map: module table -> name; C function or table field of a module
 * -> {module, field}.  A module's own name wins over its being a field of
 * another.  Tables in _G are left out: a global table is the caller's own
 * (a worker's _G does not have it), so it is copied.  Rebuilt when
 * package.loaded changes, or when forced (a C function it does not know
 * may have been added to a module since).  A metatable it does not know
 * forces nothing: that would rebuild it for every call that sends objects
 * of a local class, so a class added to a module after the map was made
 * is copied until package.loaded next changes. */
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
      int globals = strcmp(lua_tostring(L, mod - 1), LUA_GNAME) == 0;
      lua_pushvalue(L, mod);
      if (lua_rawget(L, names) != LUA_TSTRING) {
        lua_pushvalue(L, mod);
        lua_pushvalue(L, mod - 1);
        lua_rawset(L, names);
      }
      lua_pop(L, 1);
      lua_pushnil(L);
      while (lua_next(L, mod)) {
        if (lua_type(L, -2) == LUA_TSTRING &&
            (lua_iscfunction(L, -1) || (lua_istable(L, -1) && !globals))) {
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
    const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error";
    int n = snprintf(err, TR_ERRLEN, "cannot load module '%.*s' here: %s", shown(len), name, why);
    /* require's message lists every file it tried, so it is whole, not
     * cut at some length: the last tries (the C modules) tell as much as
     * the first.  Only a package.path longer than the buffer loses its
     * middle. */
    if (n >= TR_ERRLEN) {   /* cut between lines */
      static const char cut[] = "\n\t...";
      const char *tail = why + strlen(why) - TR_ERRLEN / 2, *nl = strchr(tail, '\n');
      if (nl) tail = nl;
      size_t keep = TR_ERRLEN - sizeof cut - strlen(tail);
      while (keep > 0 && err[keep] != '\n') keep--;
      memcpy(err + keep, cut, sizeof cut - 1);
      memcpy(err + keep + sizeof cut - 1, tail, strlen(tail) + 1);
    }
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

int names_push_field(lua_State *L, const char *mod, size_t mlen, const char *field, size_t flen,
                     int metatable, char *err) {
  if (!names_push_module(L, mod, mlen, err)) return 0;
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushlstring(L, field, flen);
    lua_rawget(L, -2);
    lua_remove(L, -2);
  }
  if (metatable ? !lua_istable(L, -1) : !lua_iscfunction(L, -1)) {
    snprintf(err, TR_ERRLEN, "%s %.*s.%.*s is not loaded here", metatable ? "metatable" : "function",
             shown(mlen), mod, shown(flen), field);
    return 0;
  }
  return 1;
}

/* Looks for the value at idx among the string keys of the table at t. */
static int field_of(lua_State *L, int t, int idx, const char *mod, char *buf, size_t size) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, idx)) {
      if (mod) snprintf(buf, size, "%s.%s", mod, lua_tostring(L, -2));
      else snprintf(buf, size, "%s", lua_tostring(L, -2));
      lua_pop(L, 2);
      return 1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* Globals first (as a plain name), then the other modules: what the
 * function is most likely called where it was written. */
int names_global(lua_State *L, int idx, char *buf, size_t size) {
  int found = 0;
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 6)) return 0;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int loaded = lua_gettop(L);
  if (lua_getfield(L, loaded, LUA_GNAME) == LUA_TTABLE) found = field_of(L, loaded + 1, idx, NULL, buf, size);
  lua_pop(L, 1);
  lua_pushnil(L);
  while (!found && lua_next(L, loaded)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE &&
        strcmp(lua_tostring(L, -2), LUA_GNAME) != 0)
      found = field_of(L, loaded + 2, idx, lua_tostring(L, -2), buf, size);
    lua_pop(L, found ? 2 : 1);
  }
  lua_pop(L, 1);
  return found;
}

int names_is_field(lua_State *L, int entry, int idx) {
  int ok = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_rawgeti(L, entry, 1);
  if (lua_rawget(L, -2) == LUA_TTABLE) {
    lua_rawgeti(L, entry, 2);
    lua_rawget(L, -2);
    ok = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return ok;
}
