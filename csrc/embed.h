/* Opening the module without a filesystem search. */
#ifndef FUTURES_EMBED_H
#define FUTURES_EMBED_H
#include "lua.h"

/* Puts futures and futures.core in L's package.preload. */
void embed_preload(lua_State *L);
#endif
