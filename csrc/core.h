/* Pieces of the module that other C files share: registration hooks and
 * how the C core raises the library's error classes. */
#ifndef FUTURES_CORE_H
#define FUTURES_CORE_H
#include "lua.h"

#define CORE_VERSION "futures 0.1.0"

/* Pushes a new error of class `cls` ("TimeoutError", ...) with message msg,
 * made by the Lua front's constructor; falls back to a plain string. */
void core_push_error(lua_State *L, const char *cls, const char *msg);
int core_error(lua_State *L, const char *cls, const char *msg);  /* raises */

/* Metatables found through the address of a static key as well as by
 * name, so that the checks on every call (a Future's methods) need no
 * string interning: core_newmetatable is luaL_newmetatable that also
 * files the table under key; the others are luaL_setmetatable and
 * luaL_checkudata by key. */
int core_newmetatable(lua_State *L, const void *key, const char *tname);
void core_setmetatable(lua_State *L, const void *key);
void *core_checkudata(lua_State *L, int idx, const void *key, const char *tname);
/* luaL_testudata against the metatable at stack index mt (an upvalue). */
void *core_testudata_mt(lua_State *L, int idx, int mt);

/* Opens a fresh state the way every worker's state is opened: standard
 * libraries, the embedder's hook. */
void core_open_worker_libs(lua_State *L);

/* Puts futures and futures.core in package.preload (embed.c). */
void core_preload(lua_State *L);

void fut_open(lua_State *L);     /* future.c */
void owner_open(lua_State *L);   /* owner.c */
void wait_open(lua_State *L);    /* wait.c */
void tpool_open(lua_State *L);   /* threadpool.c */
void ppool_open(lua_State *L);   /* procpool.c */
#endif
