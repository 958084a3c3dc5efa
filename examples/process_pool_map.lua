-- Worker processes are reused for many tasks; futures.getpid() (an extension:
-- plain Lua has no os.getpid) tells which process ran each one.
-- Python: PyMOTW-3 futures_process_pool_map.py
local futures = require "futures"

local function task(n)
  return n, futures.getpid()
end

local ex <close> = futures.ProcessPoolExecutor(2)
print("main process " .. futures.getpid())
for _, n, pid in ex:map(task, { 5, 4, 3, 2, 1 }) do
  print(("ran task %d in process %d"):format(n, pid))
end
print("live workers: " .. table.concat(ex:_pids(), " "))
