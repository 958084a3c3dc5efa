/* Access to the prototype (the compiled code) behind a Lua closure, for
 * the codec's code blobs.  Lua 5.4 makes a new closure each time a
 * `function` expression runs, so a cache per closure misses for
 * `ex:submit(function(x) ... end, i)` in a loop; a cache per prototype
 * does not.  The receiving side makes fresh closures of a loaded
 * prototype without loading its code again.
 *
 * Both need Lua's private structures (lobject.h: LClosure, Proto,
 * Upvaldesc).  pr_check verifies them in a live state before anything
 * uses them; until then, or if they do not match, pr_proto and pr_factory
 * say "not available" and the caller takes the public API (lua_dump,
 * lua_load), only slower. */
#ifndef FUTURES_PROTO_H
#define FUTURES_PROTO_H
#include "lua.h"

/* Verifies the layout once per process (later calls return at once). */
void pr_check(lua_State *L);

/* Turns prototype access off or back on (specs run both ways); on only
 * if pr_check passed.  pr_enabled: whether it is on. */
void pr_enable(int on);
int pr_enabled(void);

/* The prototype of the Lua function (not a C one) at idx, as an opaque
 * address; NULL when access is off.  The address names the prototype
 * only while something holds it (a closure of it, a keeper). */
const void *pr_proto(lua_State *L, int idx);

/* The upvalue count of the Lua function (not a C one) at idx, as lua_getinfo's "u"
 * gives it but at the price of a read; -1 when access is off. */
int pr_nups(lua_State *L, int idx);

/* Whether the code of the Lua function (not a C one) at idx cannot
 * change its own upvalues: it has no SETUPVAL and no function inside it.
 * 0 when it can or when access is off. */
int pr_pure(lua_State *L, int idx);

/* A keeper of the prototype of the Lua function at idx: pushes a closure
 * of that prototype whose upvalues are its own and nil (the function
 * itself when it has none), so that holding it keeps the prototype, and
 * so its address, without keeping what the function's upvalues hold.
 * The prototype is left as it was.  Returns 0, pushing nothing, when
 * access is off or the function has too many upvalues; raises memory
 * errors. */
int pr_keeper(lua_State *L, int idx);

/* A factory for the Lua function at idx: pushes a function that, called
 * with no arguments, returns a new closure of the same prototype whose
 * upvalues are fresh and nil (the caller sets every one).  It keeps that
 * prototype alive.  The prototype's own upvalue descriptions are
 * rewritten on the way (they only matter to an enclosing function, which
 * a loaded main function does not have), so use it only on a function
 * loaded for the purpose.  Returns 0, pushing nothing, when access is off
 * or the function has no upvalue or too many. */
int pr_factory(lua_State *L, int idx);

#endif
