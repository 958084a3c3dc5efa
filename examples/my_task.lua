-- Submitting tasks, reading their results, as_completed and map.
-- Python: "Python Concurrency and Future" (seconds shortened to tenths)
local futures = require "futures"

local function my_task(seconds)
  print(("Sleeping for %.1f second(s)..."):format(seconds))
  futures.sleep(seconds)
  return ("Finished sleeping for %.1f second(s)"):format(seconds)
end

do
  local executor <close> = futures.ThreadPoolExecutor()

  -- Submitting tasks to the executor: each submit returns a Future at once.
  local task1 = executor:submit(my_task, 0.2)
  local task2 = executor:submit(my_task, 0.4)
  print("task1 running?", task1:running(), "cancelled?", task1:cancelled(),
        "done?", task1:done())

  -- result() blocks until the task has finished, then returns its values.
  print(task1:result())
  print(task2:result())

  -- as_completed yields the futures in the order they finish.
  local results = {}
  for _, seconds in ipairs { 0.2, 0.4, 0.1 } do
    results[#results + 1] = executor:submit(my_task, seconds)
  end
  for future in futures.as_completed(results) do
    print(future:result())
  end

  -- map yields (index, result) in input order.
  for _, result in executor:map(my_task, { 0.2, 0.4, 0.1 }) do
    print(result)
  end
end   -- leaving the block shuts the executor down and waits for its workers

-- The same with processes: only the constructor changes.
do
  local executor <close> = futures.ProcessPoolExecutor()
  for _, result in executor:map(my_task, { 0.2, 0.1 }) do
    print(result)
  end
end
