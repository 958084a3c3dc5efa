/* futures.spawn, futures.run, futures.fd and futures.timeout. */
#ifndef FUTURES_SPAWN_H
#define FUTURES_SPAWN_H
#include "lua.h"

void spawn_open(lua_State *L);   /* into the module table at -1 */
#endif
