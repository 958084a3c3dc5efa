/* ProcessPoolExecutor: worker processes fed over pipes.
 *
 * DESIGN
 * The backend of pool.c for processes.  Its worker threads are proxies
 * (proxy.c), one per worker process: each takes calls from the shared
 * queue, writes them to its process as frames and completes the futures
 * with the results it reads back.  Processes are spawned and reaped by
 * their proxies (procspawn.c) and listed with the pool's monitor thread
 * (procmon.c), which sees a worker die while its proxy waits for work.
 *
 * This file holds what the Lua object adds to an executor: the
 * constructor, terminate_workers/kill_workers and _pids.  The backend's
 * data (procdata, proxy.h) lives until the pool's last reference goes.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "procpool.h"
#include "procspawn.h"
#include "proxy.h"

static void destroy(void *data) {
  procdata *pd = data;
  free(pd->worker_path);
  pmon_destroy(&pd->mon);
  free(pd);
}

static const pool_backend backend = {
  {"ProcessPoolExecutor", &pool_executor_class}, LUAX_BROKEN_PROCESS, 1, 0, proxy_main, destroy
};

static int signal_workers(lua_State *L, int sig) {
  pool_t *p = pool_check(L, 1);
  procdata *pd = pool_data(p);
  pool_break(p, sig == SIGKILL ? "the workers were killed" : "the workers were terminated");
  pmon_signal(&pd->mon, sig);
  return 0;
}

static int l_terminate_workers(lua_State *L) { return signal_workers(L, SIGTERM); }
static int l_kill_workers(lua_State *L) { return signal_workers(L, SIGKILL); }

/* ex:_pids() -> the worker process ids now running (for specs) */
static int l_pids(lua_State *L) {
  pool_t *p = pool_check(L, 1);
  procdata *pd = pool_data(p);
  size_t n;
  pid_t *pids = pmon_pids(&pd->mon, &n);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushinteger(L, pids[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(pids);
  return 1;
}

/* core.ProcessPoolExecutor(max_workers, initializer, initargs, nil,
 *                          max_tasks_per_child, call_timeout, stop_grace,
 *                          worker_path) */
static int l_new(lua_State *L) {
  const char *path = luaL_optstring(L, 8, NULL);
  lua_settop(L, 7);
  pool_t *p = pool_push_new(L, &backend);
  procdata *pd = calloc(1, sizeof *pd);
  if (!pd) return luaL_error(L, "not enough memory");
  pmon_init(&pd->mon, p);
  pool_set_data(p, pd);
  pd->worker_path = path ? spawn_absolute(path) : strdup(lua_tostring(L, lua_upvalueindex(1)));
  if (!pd->worker_path) return luaL_error(L, "not enough memory");
  return 1;
}

static const luaL_Reg extra[] = {
  {"terminate_workers", l_terminate_workers},
  {"kill_workers", l_kill_workers},
  {"_pids", l_pids},
  {NULL, NULL}
};

void ppool_open(lua_State *L) {
  pool_open(L, &backend);
  lua_getfield(L, -1, "ProcessPoolExecutor_methods");
  luaL_setfuncs(L, extra, 0);
  lua_pop(L, 1);
  /* The default worker program, found once, while the module's path (if
   * relative) still means what it meant to dlopen. */
  char *path = spawn_default_path();
  if (!path) luaL_error(L, "not enough memory");
  lua_pushstring(L, path);
  free(path);
  lua_pushcclosure(L, l_new, 1);
  lua_setfield(L, -2, "ProcessPoolExecutor");
}
