/* cpu_count, monotonic, sleep, getpid and current_worker.  sleep is a
 * wait on the state's owner, so Ctrl-C stops it; it runs no callbacks. */
#include <unistd.h>
#include "lauxlib.h"
#include "clock.h"
#include "owner.h"
#include "suspend.h"
#include "sysfuncs.h"
#include "workerstate.h"

static int l_cpu_count(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, clk_now());
  return 1;
}

/* futures.sleep(s): s may be huge (math.huge sleeps until Ctrl-C).  In a
 * spawned coroutine it suspends until its deadline (kept at 2). */
static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  susp_t *co = susp_current(L);
  if (status == LUA_OK) {
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s == s, 1, "not a number");
    if (s <= 0) return 0;
    lua_settop(L, 1);
    lua_pushnumber(L, clk_now() + s);
  }
  double deadline = lua_tonumber(L, 2);
  if (co) {
    if (clk_now() >= deadline) return 0;
    return susp_wait(L, co, deadline, 0, sleep_k);
  }
  if (owner_sleep(L, deadline) == OWNER_INTERRUPTED) return owner_raise_interrupt(L);
  return 0;
}

static int l_sleep(lua_State *L) { return sleep_k(L, LUA_OK, 0); }

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static int l_current_worker(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, WS_NAME_KEY);
  return 1;
}

void sysfuncs_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"cpu_count", l_cpu_count},
    {"monotonic", l_monotonic},
    {"sleep", l_sleep},
    {"getpid", l_getpid},
    {"current_worker", l_current_worker},
    {NULL, NULL}
  };
  luaL_setfuncs(L, funcs, 0);
}
