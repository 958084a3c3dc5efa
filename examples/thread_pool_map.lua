-- map() returns results in input order, whatever order the tasks finish in.
-- Python: PyMOTW-3 futures_thread_pool_map.py
local futures = require "futures"

-- One write per line: print writes a line in pieces, so lines printed at the
-- same moment by several threads could mix (see README, "print in tasks").
local function say(fmt, ...)
  io.write(fmt:format(...) .. "\n")
end

local function task(n)
  -- runs in a worker thread with its own Lua state: `futures` crosses as a
  -- loaded module, so the worker gets its own copy by `require`
  say("%s: sleeping %d", futures.current_worker(), n)
  futures.sleep(n / 10)
  say("%s: done with %d", futures.current_worker(), n)
  return n / 10
end

local ex <close> = futures.ThreadPoolExecutor(2)
say("main: starting")
local results = ex:map(task, { 5, 4, 3, 2, 1 })
say("main: unprocessed results %s", tostring(results))
say("main: waiting for real results")
local real = {}
for _, r in results do real[#real + 1] = r end   -- index first, then the values
say("main: results: { %s }", table.concat(real, ", "))
