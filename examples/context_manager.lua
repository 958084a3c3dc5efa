-- `local ex <close>` is Python's `with`: leaving the scope calls
-- ex:shutdown(true), which waits for every submitted task.
-- Python: PyMOTW-3 futures_context_manager.py
local futures = require "futures"

local function task(n)
  print(n)
end

do
  local ex <close> = futures.ThreadPoolExecutor(2)
  print("main: starting")
  ex:submit(task, 1)
  ex:submit(task, 2)
  ex:submit(task, 3)
  ex:submit(task, 4)
end -- ex:shutdown() runs here (also if an error leaves the block)

print("main: done")
