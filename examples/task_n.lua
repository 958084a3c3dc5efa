-- Five small tasks on a thread pool, then on a process pool; as_completed
-- waits for each of them.  Python: "Python's concurrent.futures module"
local futures = require "futures"

-- One write per line: print writes a line in pieces, so lines printed at the
-- same moment by several threads could mix (see README, "print in tasks").
local function say(fmt, ...)
  io.write(fmt:format(...) .. "\n")
end

local function task(n)
  say("Started task %d", n)
  -- Perform some time-consuming operation here
  futures.sleep(0.05)
  say("Completed task %d", n)
end

for _, kind in ipairs { "ThreadPoolExecutor", "ProcessPoolExecutor" } do
  say("-- %s", kind)
  local executor <close> = futures[kind]()   -- shut down at the end of each turn
  local tasks = {}
  for i = 0, 4 do tasks[#tasks + 1] = executor:submit(task, i) end
  for _ in futures.as_completed(tasks) do
    -- Wait for each task to complete
  end
  say("All tasks completed")
end
