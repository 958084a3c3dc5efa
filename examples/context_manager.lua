-- `local ex <close>` is Python's `with`: leaving the scope calls
-- ex:shutdown(true), which waits for every submitted task.
-- Python: PyMOTW-3 futures_context_manager.py
local futures = require "futures"

-- One write per line: print writes a line in pieces, so lines printed at the
-- same moment by several threads could mix (see README, "print in tasks").
local function say(fmt, ...)
  io.write(fmt:format(...) .. "\n")
end

local function task(n)
  say("%d", n)
end

do
  local ex <close> = futures.ThreadPoolExecutor(2)
  say("main: starting")
  ex:submit(task, 1)
  ex:submit(task, 2)
  ex:submit(task, 3)
  ex:submit(task, 4)
end -- ex:shutdown() runs here (also if an error leaves the block)

say("main: done")
