rockspec_format = "3.0"
package = "futures"
version = "scm-1"

source = {
   url = "git+https://github.com/futures-lua/futures.git",
}

description = {
   summary = "Python's concurrent.futures for Lua 5.4: thread and process pools, futures",
   detailed = [[
Executors that run calls on pools of workers and Future objects that hold
their outcome, as in Python's concurrent.futures: ThreadPoolExecutor (one
lua_State per worker thread) and ProcessPoolExecutor (worker processes over
pipes), with submit, map, wait, as_completed, cancellation, timeouts,
done-callbacks and clean shutdown.  Values are copied between states.
]],
   license = "MIT",
   labels = { "concurrency", "threads", "processes", "futures" },
}

dependencies = {
   "lua >= 5.4, < 5.5",
}

build = {
   type = "make",
   -- `make all`, then `make install` into the rock's own directories, which
   -- luarocks then deploys: C modules (futures/core.so and the process
   -- worker next to it) from LIBDIR, Lua files (futures/init.lua) from LUADIR.
   build_variables = {
      LUA = "$(LUA)",
      LUA_INC = "$(LUA_INCDIR)",
      CC = "$(CC)",
      CFLAGS = "$(CFLAGS)",
   },
   install_variables = {
      PREFIX = "$(PREFIX)",
      LUA_LIBDIR = "$(LIBDIR)",
      LUA_SHARE = "$(LUADIR)",
      LUA_INC = "$(LUA_INCDIR)",
      CC = "$(CC)",
      CFLAGS = "$(CFLAGS)",
   },
}

test = {
   type = "busted",
}
