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
   -- `make all` builds; luarocks then copies the files listed in `install`
   -- into the rock and deploys them: the C module futures/core.so and the
   -- process worker next to it (found there at run time) as C modules, and
   -- futures/init.lua as a Lua module.  `make install` is not run: it also
   -- installs libfutures.a and futures.h for embedders, and in a rock the
   -- static library would land in lib/lua/5.4/ among the C modules.
   -- Embedders get both from `make install`.  A new file under lua/futures/
   -- must be listed here too.
   build_variables = {
      LUA = "$(LUA)",
      LUA_INC = "$(LUA_INCDIR)",
      CC = "$(CC)",
      CFLAGS = "$(CFLAGS)",
   },
   install_pass = false,
   install = {
      lua = {
         ["futures.init"] = "lua/futures/init.lua",
      },
      lib = {
         ["futures.core"] = "build/futures/core.so",
         ["futures.worker"] = "build/futures/worker",
      },
   },
}

test = {
   type = "busted",
}
