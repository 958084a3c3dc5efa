-- shutdown(wait, cancel_futures): stop accepting work; optionally cancel
-- what has not started; optionally do not wait for the rest.
-- Python: coderzcolumn's notes on shutdown(wait=True, cancel_futures=False)
local futures = require "futures"

local function task(n)
  futures.sleep(0.1)
  return n
end

local function states(fs)
  local s = {}
  for i, f in ipairs(fs) do
    s[i] = f:cancelled() and "cancelled" or f:done() and "done" or f:running() and "running" or "pending"
  end
  return table.concat(s, " ")
end

-- cancel_futures = true: the two running calls finish, the six pending ones
-- are cancelled; wait = true (the default) waits for the running ones.
local ex = futures.ThreadPoolExecutor(2)
local fs = {}
for i = 1, 8 do fs[i] = ex:submit(task, i) end
while not fs[2]:running() do futures.sleep(0.001) end   -- let 1 and 2 start
local t0 = futures.monotonic()
ex:shutdown(true, true)
print(("shutdown(true, true) took %.1f s: %s"):format(futures.monotonic() - t0, states(fs)))

-- wait = false: returns at once; the queued calls still run in the background.
ex = futures.ThreadPoolExecutor(2)
fs = {}
for i = 1, 4 do fs[i] = ex:submit(task, i) end
t0 = futures.monotonic()
ex:shutdown(false)
print(("shutdown(false) took %.1f s: %s"):format(futures.monotonic() - t0, states(fs)))
futures.wait(fs)
print("later: " .. states(fs))

-- After shutdown, submit raises futures.ShutdownError.
local ok, err = pcall(ex.submit, ex, task, 5)
print(ok, futures.ShutdownError:is(err), tostring(err))
print(ex)
