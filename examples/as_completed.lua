-- as_completed() yields futures as they finish: the order changes each run.
-- Python: PyMOTW-3 futures_as_completed.py
local futures = require "futures"

local function task(n, pause)
  futures.sleep(pause)
  return n, n / 10          -- a task may return several values
end

local ex <close> = futures.ThreadPoolExecutor(5)
print("main: starting")
local wait_for = {}
for i = 5, 1, -1 do
  -- the random pause is drawn here: every worker state has its own seed
  wait_for[#wait_for + 1] = ex:submit(task, i, math.random() * 0.3)
end
for f in futures.as_completed(wait_for) do
  print(("main: result: (%d, %.1f)"):format(f:result()))
end
