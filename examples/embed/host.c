/* A host program that embeds Lua 5.4 and the futures library, linked
 * statically: no module files are needed on disk.
 *   host SCRIPT WORKER_PROGRAM
 * The script sees the global `host` (a C library of the host) and
 * `futures`; thread workers get `host` through futures_set_worker_init,
 * process workers through the host's own worker program (worker.c). */
#include <stdio.h>
#include "futures.h"
#include "hostlib.h"
#include "lualib.h"

static void init_thread_worker(lua_State *worker, void *ud) {
  (void)ud;
  open_host(worker);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s SCRIPT WORKER_PROGRAM\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  open_host(L);
  luaL_requiref(L, "futures", luaopen_futures, 1);
  lua_pop(L, 1);
  futures_set_worker_init(L, init_thread_worker, NULL);
  lua_pushstring(L, argv[2]);
  lua_setglobal(L, "WORKER_PROGRAM");
  int status = luaL_dofile(L, argv[1]);
  if (status != LUA_OK) fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
  lua_close(L);   /* waits for queued work, like the stand-alone interpreter */
  return status == LUA_OK ? 0 : 1;
}
