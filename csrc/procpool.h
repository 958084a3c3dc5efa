/* ProcessPoolExecutor. */
#ifndef FUTURES_PROCPOOL_H
#define FUTURES_PROCPOOL_H
#include "lua.h"

void ppool_open(lua_State *L);   /* core.ProcessPoolExecutor into the table at -1 */
#endif
