/* Opening the whole module without a filesystem search: the Lua front is
 * compiled into the library (build/gen/front.c, from lua/futures/init.lua),
 * so a host that links libfutures.a statically can luaL_requiref it, and
 * every worker state finds `futures` and `futures.core` in package.preload
 * instead of searching package.path and loading core.so again. */
#include "lauxlib.h"
#include "embed.h"
#include "futures.h"

extern const unsigned char futures_front[];
extern const size_t futures_front_len;

FUTURES_API int luaopen_futures(lua_State *L) {
  embed_preload(L);
  if (luaL_loadbufferx(L, (const char *)futures_front, futures_front_len, "=futures", "t") != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, "futures");
  lua_call(L, 1, 1);
  return 1;
}

void embed_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_futures_core);
  lua_setfield(L, -2, "futures.core");
  lua_pushcfunction(L, luaopen_futures);
  lua_setfield(L, -2, "futures");
  lua_pop(L, 1);
}
