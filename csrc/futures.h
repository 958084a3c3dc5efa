/* futures: the C API for programs that embed Lua 5.4.
 *
 * A host links libfutures.a (or loads futures/core.so) and may:
 *  - open the module without a filesystem search:
 *        luaL_requiref(L, "futures", luaopen_futures, 0);
 *  - give every thread worker's state its own libraries with
 *    futures_set_worker_init;
 *  - build its own process-worker program around futures_worker_main and
 *    name it with ProcessPoolExecutor{ worker = path }.
 */
#ifndef FUTURES_H
#define FUTURES_H
#include "lua.h"

#define FUTURES_API __attribute__((visibility("default")))

typedef void (*futures_worker_init_fn)(lua_State *worker, void *ud);

/* The whole module (the Lua front is compiled in): for luaL_requiref from
 * a host with no module files on disk.  luaopen_futures_core is the C half
 * alone, which the front requires as "futures.core". */
FUTURES_API int luaopen_futures(lua_State *L);
FUTURES_API int luaopen_futures_core(lua_State *L);

/* Calls fn(worker, ud) in every new thread-worker state, after the standard
 * libraries are open and before initializers and tasks run.  Applies to the
 * thread pools created afterwards from L (and the whole process: a worker
 * can create pools of its own).  fn NULL removes the hook. */
FUTURES_API void futures_set_worker_init(lua_State *L, futures_worker_init_fn fn, void *ud);

/* The body of a process worker: call it from main().  `init`, if not NULL,
 * runs in the worker's fresh state after the standard libraries open.
 * Returns the process exit status. */
FUTURES_API int futures_worker_main(int argc, char **argv, void (*init)(lua_State *worker));
#endif
