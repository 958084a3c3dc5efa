-- add_done_callback(fn): fn(future) runs when the future is done, in this
-- Lua state (never in a worker).  Python: PyMOTW-3 futures_future_callback.py
local futures = require "futures"

local function task(n)
  print(("%d: sleeping"):format(n))
  futures.sleep(0.2)
  print(("%d: done"):format(n))
  return n / 10
end

-- A callback is called for any reason the future is done: check which.
-- Futures take no fields (Python's `f.arg = 5`): a closure carries `arg`.
local function done(fn, arg)
  if fn:cancelled() then
    print(("%d: canceled"):format(arg))
  elseif fn:done() then
    local error = fn:exception()
    if error then
      print(("%d: error returned: %s"):format(arg, error))
    else
      print(("%d: value returned: %s"):format(arg, fn:result()))
    end
  end
end

local ex <close> = futures.ThreadPoolExecutor(2)
print("main: starting")
local f = ex:submit(task, 5)
f:add_done_callback(function(fn) done(fn, 5) end)
local result = f:result()   -- callbacks due in this state run while it waits
