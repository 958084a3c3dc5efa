-- cancel() stops a task that has not started yet; its callbacks still run.
-- Python: PyMOTW-3 futures_future_callback_cancel.py
local futures = require "futures"

-- One write per line: print writes a line in pieces, so lines printed at the
-- same moment by several threads could mix (see README, "print in tasks").
local function say(fmt, ...)
  io.write(fmt:format(...) .. "\n")
end

local function task(n)
  say("%d: sleeping", n)
  futures.sleep(0.2)
  say("%d: done", n)
  return n / 10
end

local function done(fn, arg)
  if fn:cancelled() then
    say("%d: canceled", arg)
  elseif fn:done() then
    say("%d: not canceled", arg)
  end
end

local ex = futures.ThreadPoolExecutor(2)
say("main: starting")
local tasks = {}
for i = 10, 1, -1 do
  say("main: submitting %d", i)
  local f = ex:submit(task, i)
  f:add_done_callback(function(fn) done(fn, i) end)
  tasks[#tasks + 1] = { i, f }
end

-- Workers start in the background: wait until the two of them have picked
-- up 10 and 9 (Python's threads happen to start at once; ours need a moment).
while not (tasks[1][2]:running() and tasks[2][2]:running()) do futures.sleep(0.001) end

for k = #tasks, 1, -1 do
  local i, t = tasks[k][1], tasks[k][2]
  if not t:cancel() then   -- false: it is already running (or finished)
    say("main: did not cancel %d", i)
  end
end
ex:shutdown()
