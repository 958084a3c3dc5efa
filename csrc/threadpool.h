/* ThreadPoolExecutor. */
#ifndef FUTURES_THREADPOOL_H
#define FUTURES_THREADPOOL_H
#include "lua.h"

void tpool_open(lua_State *L);   /* core.ThreadPoolExecutor into the table at -1 */
#endif
