/* The host's own library, `host`, shared by the host and its worker. */
#ifndef HOSTLIB_H
#define HOSTLIB_H
#include "lauxlib.h"

/* host.scale(x) -> x * 2.5: stands for any function a game or tool gives
 * its scripts. */
static int host_scale(lua_State *L) {
  lua_pushnumber(L, luaL_checknumber(L, 1) * 2.5);
  return 1;
}

static int luaopen_host(lua_State *L) {
  static const luaL_Reg funcs[] = {{"scale", host_scale}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}

/* Registers `host` in a state (package.loaded.host and the global). */
static inline void open_host(lua_State *L) {
  luaL_requiref(L, "host", luaopen_host, 1);
  lua_pop(L, 1);
}
#endif
