-- A worker process that dies breaks the pool: its futures and every later
-- one fail with futures.BrokenProcessPool.
-- Python: PyMOTW-3 futures_process_pool_broken.py
local futures = require "futures"

local ex <close> = futures.ProcessPoolExecutor(2)
print("getting the pid for one worker")
local f1 = ex:submit(futures.getpid)
local pid1 = f1:result()

print(("killing process %d"):format(pid1))
os.execute(("kill -9 %d"):format(pid1))

print("submitting another task")
-- Depending on when the pool notices the death, submit itself or the
-- result raises BrokenProcessPool.
local ok, e = pcall(function()
  local f2 = ex:submit(futures.getpid)
  return f2:result()
end)
if not ok and futures.BrokenProcessPool:is(e) then
  print(("could not start new tasks: %s"):format(e.message))
elseif not ok then
  error(e, 0)
end
