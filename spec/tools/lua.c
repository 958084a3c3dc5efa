/* A minimal stand-alone Lua interpreter for the sanitizer builds: built
 * with the same -fsanitize flags as the module, so no runtime has to be
 * preloaded (a preloaded TSan runtime crashes every shell a spec starts).
 * Usage: lua [-W] [-e chunk]... [script [args]]; Ctrl-C as in lua.c. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

static lua_State *globalL;

static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void laction(int sig) {
  signal(sig, SIG_DFL);
  lua_sethook(globalL, lstop, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);  /* as lua.c */
}

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int docall(lua_State *L, int nargs) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  signal(SIGINT, laction);
  int st = lua_pcall(L, nargs, 0, base);
  signal(SIGINT, SIG_DFL);
  lua_remove(L, base);
  if (st != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return st;
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  int i = 1, st = LUA_OK;
  for (; i < argc && argv[i][0] == '-' && st == LUA_OK; i++) {
    if (strcmp(argv[i], "-W") == 0) lua_warning(L, "@on", 0);
    else if (strcmp(argv[i], "-e") == 0 && i + 1 < argc) {
      i++;
      st = luaL_loadstring(L, argv[i]);
      if (st == LUA_OK) st = docall(L, 0);
      else { fprintf(stderr, "lua: %s\n", lua_tostring(L, -1)); lua_pop(L, 1); }
    } else if (strcmp(argv[i], "--") == 0) { i++; break; }
    else { fprintf(stderr, "lua: unknown option %s\n", argv[i]); st = LUA_ERRRUN; }
  }
  if (st == LUA_OK && i < argc) {
    lua_createtable(L, argc, 1);
    for (int k = 0; k < argc; k++) {
      lua_pushstring(L, argv[k]);
      lua_rawseti(L, -2, k - i);
    }
    lua_setglobal(L, "arg");
    st = luaL_loadfile(L, argv[i]);
    if (st == LUA_OK) {
      int n = argc - i - 1;
      for (int k = i + 1; k < argc; k++) lua_pushstring(L, argv[k]);
      st = docall(L, n);
    } else {
      fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_close(L);
  return st == LUA_OK ? 0 : 1;
}
