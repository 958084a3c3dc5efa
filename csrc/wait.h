/* futures.wait, the as_completed iterator state and futures.poll. */
#ifndef FUTURES_WAIT_H
#define FUTURES_WAIT_H
#include "lua.h"

void wait_open(lua_State *L);   /* into the module table at -1 */
#endif
