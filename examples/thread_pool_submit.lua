-- submit() schedules one call and returns a Future; tostring shows its state.
-- Python: PyMOTW-3 futures_thread_pool_submit.py
local futures = require "futures"

-- One write per line: print writes a line in pieces, so lines printed at the
-- same moment by several threads could mix (see README, "print in tasks").
local function say(fmt, ...)
  io.write(fmt:format(...) .. "\n")
end

local function task(n)
  say("%s: sleeping %d", futures.current_worker(), n)
  futures.sleep(n / 10)
  say("%s: done with %d", futures.current_worker(), n)
  return n / 10
end

local ex <close> = futures.ThreadPoolExecutor(2)
say("main: starting")
local f = ex:submit(task, 5)
say("main: future: %s", tostring(f))
say("main: waiting for results")
local result = f:result()
say("main: result: %s", result)
say("main: future after result: %s", tostring(f))
