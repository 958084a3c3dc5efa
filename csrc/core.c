/* futures.core: the C half of the module.  This file only wires the
 * pieces together; each concern lives in its own file (the README's "How
 * it works" draws the layers). */
#include "lauxlib.h"
#include "embed.h"
#include "future.h"
#include "futures.h"
#include "luax.h"
#include "owner.h"
#include "procpool.h"
#include "queueobj.h"
#include "spawn.h"
#include "sysfuncs.h"
#include "testhooks.h"
#include "threadpool.h"
#include "transfer.h"
#include "wait.h"
#include "workerstate.h"

#define CORE_VERSION "futures 0.1.0"

FUTURES_API int luaopen_futures_core(lua_State *L) {
  ws_set_preload(embed_preload);
  tr_open(L);
  owner_get(L);   /* first, so it is finalized last: it waits for the executors */
  lua_newtable(L);
  sysfuncs_open(L);
  future_open(L);
  wait_open(L);
  spawn_open(L);
  queueobj_open(L);
  tpool_open(L);
  ppool_open(L);
  testhooks_open(L);
  lua_pushcfunction(L, tr_constant);
  lua_setfield(L, -2, "constant");
  lua_pushcfunction(L, luax_set_error_ctor);
  lua_setfield(L, -2, "_set_error_ctor");
  lua_pushliteral(L, CORE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
