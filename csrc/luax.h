/* luax: the Lua helpers every file of the library shares.
 *
 * One way to know a userdata's type: its metatable carries, under a key of
 * this file's, the address of a static luax_class.  A class may have a
 * parent (each executor kind is an "executor"), so one check serves a
 * family.  Errors of the library's own classes are raised by an enum, so
 * a misspelt class is a compile error, not a plain string at run time.
 */
#ifndef FUTURES_LUAX_H
#define FUTURES_LUAX_H
#include "lua.h"
#include "lauxlib.h"

typedef struct luax_class {
  const char *name;                  /* __name, and the type in error messages */
  const struct luax_class *parent;   /* NULL, or the family it belongs to */
} luax_class;

/* Pushes c's metatable, creating it on the first call (returns 1 then). */
int luax_newclass(lua_State *L, const luax_class *c);
/* Sets c's metatable (made by luax_newclass) on the value at the top. */
void luax_setclass(lua_State *L, const luax_class *c);
/* The userdata at idx if it is of class c (or of a child of c), else NULL. */
void *luax_toudata(lua_State *L, int idx, const luax_class *c);
/* The same, raising a type error naming c when it is not. */
void *luax_checkudata(lua_State *L, int idx, const luax_class *c);
/* luax_checkudata of argument 1 in a method that luax_setmethods
 * registered: its class's metatable is upvalue 1, so the common case
 * costs one comparison. */
void *luax_checkself(lua_State *L, const luax_class *c);
/* With a class's metatable at the top: sets its metamethods and an
 * __index table of its methods, each with the metatable as upvalue 1. */
void luax_setmethods(lua_State *L, const luaL_Reg *metamethods, const luaL_Reg *methods);

/* The timeout argument at arg as an absolute monotonic deadline: nil is
 * forever (-1), a negative number counts as 0, NaN is an argument error. */
double luax_optdeadline(lua_State *L, int arg);

int luax_iscallable(lua_State *L, int idx);
void luax_checkcallable(lua_State *L, int arg);   /* "callable expected" */

/* The library's error classes (futures.<Name> in the Lua front). */
typedef enum luax_errclass {
  LUAX_CANCELLED, LUAX_TIMEOUT, LUAX_INVALID_STATE, LUAX_SHUTDOWN,
  LUAX_TRANSFER, LUAX_BROKEN_THREAD, LUAX_BROKEN_PROCESS
} luax_errclass;

/* Pushes a new error of class e with message msg, made by the Lua front's
 * constructor; a plain "futures.<Name>: msg" string if it cannot be. */
void luax_push_error(lua_State *L, luax_errclass e, const char *msg);
int luax_error(lua_State *L, luax_errclass e, const char *msg);   /* raises */

/* futures.core._set_error_ctor(fn, source): the front hands over its
 * constructor and its own chunk's source (so its frames can be skipped). */
int luax_set_error_ctor(lua_State *L);
/* Pushes "file:line:" of the innermost Lua frame that is the user's (not
 * C, not the front's), or "" if there is none. */
void luax_push_userwhere(lua_State *L);
#endif
