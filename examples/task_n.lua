-- Five small tasks on a thread pool, then on a process pool; as_completed
-- waits for each of them.  Python: "Python's concurrent.futures module"
local futures = require "futures"

local function task(n)
  print(("Started task %d"):format(n))
  -- Perform some time-consuming operation here
  futures.sleep(0.05)
  print(("Completed task %d"):format(n))
end

for _, kind in ipairs { "ThreadPoolExecutor", "ProcessPoolExecutor" } do
  print("-- " .. kind)
  local executor <close> = futures[kind]()   -- shut down at the end of each turn
  local tasks = {}
  for i = 0, 4 do tasks[#tasks + 1] = executor:submit(task, i) end
  for _ in futures.as_completed(tasks) do
    -- Wait for each task to complete
  end
  print("All tasks completed")
end
