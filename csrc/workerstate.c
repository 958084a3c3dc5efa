/* How every worker's Lua state is born: standard libraries, the embedder's
 * hook, the creator's package paths and the worker's name. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "lualib.h"
#include "futures.h"
#include "transfer.h"
#include "workerstate.h"

/* One hook for the process: set by the host before it creates pools. */
static _Atomic(futures_worker_init_fn) init_fn;
static _Atomic(void *) init_ud;
/* Set by the module's entry points (the same function every time). */
static _Atomic(ws_preload_fn) preload;

void ws_set_preload(ws_preload_fn fn) { atomic_store(&preload, fn); }

FUTURES_API void futures_set_worker_init(lua_State *L, futures_worker_init_fn fn, void *ud) {
  (void)L;
  atomic_store(&init_ud, ud);
  atomic_store(&init_fn, fn);
}

/* print, but a whole line in one write: lines from several workers (and
 * from worker processes sharing the terminal) never interleave mid-line. */
static int ws_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *line = lua_tolstring(L, -1, &len);
  fwrite(line, 1, len, stdout);
  fflush(stdout);
  return 0;
}

static void open_libs(lua_State *L) {
  luaL_openlibs(L);
  lua_pushcfunction(L, ws_print);
  lua_setglobal(L, "print");
  futures_worker_init_fn fn = atomic_load(&init_fn);
  if (fn) fn(L, atomic_load(&init_ud));
  tr_open(L);
}

static int open_worker(lua_State *L) {
  const ws_config *c = lua_touserdata(L, 1);
  open_libs(L);
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    if (c->path) { lua_pushstring(L, c->path); lua_setfield(L, -2, "path"); }
    if (c->cpath) { lua_pushstring(L, c->cpath); lua_setfield(L, -2, "cpath"); }
  }
  ws_preload_fn fn = atomic_load(&preload);
  if (fn) fn(L);   /* no search, no second dlopen of core.so */
  lua_pushstring(L, c->name);
  lua_setfield(L, LUA_REGISTRYINDEX, WS_NAME_KEY);
  return 0;
}

char *ws_package_field(lua_State *L, const char *field) {
  char *s = NULL;
  if (lua_getglobal(L, "package") == LUA_TTABLE) {
    if (lua_getfield(L, -1, field) == LUA_TSTRING) s = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return s;
}

lua_State *ws_new(const ws_config *c, char *err, size_t errlen) {
  lua_State *L = luaL_newstate();
  if (!L) { snprintf(err, errlen, "not enough memory for a worker state"); return NULL; }
  lua_pushcfunction(L, open_worker);
  lua_pushlightuserdata(L, (void *)c);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    snprintf(err, errlen, "cannot open a worker state: %s",
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
    lua_close(L);
    return NULL;
  }
  return L;
}
