-- map() returns results in input order, whatever order the tasks finish in.
-- Python: PyMOTW-3 futures_thread_pool_map.py
local futures = require "futures"

local function task(n)
  -- runs in a worker thread with its own Lua state: `futures` crosses as a
  -- loaded module, so the worker gets its own copy by `require`
  print(("%s: sleeping %d"):format(futures.current_worker(), n))
  futures.sleep(n / 10)
  print(("%s: done with %d"):format(futures.current_worker(), n))
  return n / 10
end

local ex <close> = futures.ThreadPoolExecutor(2)
print("main: starting")
local results = ex:map(task, { 5, 4, 3, 2, 1 })
print("main: unprocessed results " .. tostring(results))
print("main: waiting for real results")
local real = {}
for _, r in results do real[#real + 1] = r end   -- index first, then the values
print("main: results: { " .. table.concat(real, ", ") .. " }")
