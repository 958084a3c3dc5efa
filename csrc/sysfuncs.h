/* The module's small functions about the system and time. */
#ifndef FUTURES_SYSFUNCS_H
#define FUTURES_SYSFUNCS_H
#include "lua.h"

void sysfuncs_open(lua_State *L);   /* into the module table at -1 */
#endif
