-- submit() schedules one call and returns a Future; tostring shows its state.
-- Python: PyMOTW-3 futures_thread_pool_submit.py
local futures = require "futures"

local function task(n)
  print(("%s: sleeping %d"):format(futures.current_worker(), n))
  futures.sleep(n / 10)
  print(("%s: done with %d"):format(futures.current_worker(), n))
  return n / 10
end

local ex <close> = futures.ThreadPoolExecutor(2)
print("main: starting")
local f = ex:submit(task, 5)
print("main: future: " .. tostring(f))
print("main: waiting for results")
local result = f:result()
print("main: result: " .. result)
print("main: future after result: " .. tostring(f))
