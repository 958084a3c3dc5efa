/* Entry points for the specs only (names start with an underscore). */
#ifndef FUTURES_TESTHOOKS_H
#define FUTURES_TESTHOOKS_H
#include "lua.h"

void testhooks_open(lua_State *L);   /* into the module table at -1 */
#endif
