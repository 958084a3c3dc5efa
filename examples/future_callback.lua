-- add_done_callback(fn): fn(future) runs when the future is done, in this
-- Lua state (never in a worker).  Python: PyMOTW-3 futures_future_callback.py
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

-- A callback is called for any reason the future is done: check which.
-- Futures take no fields (Python's `f.arg = 5`): a closure carries `arg`.
local function done(fn, arg)
  if fn:cancelled() then
    say("%d: canceled", arg)
  elseif fn:done() then
    local error = fn:exception()
    if error then
      say("%d: error returned: %s", arg, error)
    else
      say("%d: value returned: %s", arg, fn:result())
    end
  end
end

local ex <close> = futures.ThreadPoolExecutor(2)
say("main: starting")
local f = ex:submit(task, 5)
f:add_done_callback(function(fn) done(fn, 5) end)
local result = f:result()   -- callbacks due in this state run while it waits
