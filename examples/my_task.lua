-- Submitting tasks, reading their results, as_completed and map.
-- Python: "Python Concurrency and Future" (seconds shortened to tenths)
local futures = require "futures"

-- One write per line: print writes a line in pieces, so lines printed at the
-- same moment by several threads could mix (see README, "print in tasks").
local function say(fmt, ...)
  io.write(fmt:format(...) .. "\n")
end

local function my_task(seconds)
  say("Sleeping for %.1f second(s)...", seconds)
  futures.sleep(seconds)
  return ("Finished sleeping for %.1f second(s)"):format(seconds)
end

do
  local executor <close> = futures.ThreadPoolExecutor()

  -- Submitting tasks to the executor: each submit returns a Future at once.
  local task1 = executor:submit(my_task, 0.2)
  local task2 = executor:submit(my_task, 0.4)
  say("task1 running? %s cancelled? %s done? %s",
      task1:running(), task1:cancelled(), task1:done())

  -- result() blocks until the task has finished, then returns its values.
  say("%s", task1:result())
  say("%s", task2:result())

  -- as_completed yields the futures in the order they finish.
  local results = {}
  for _, seconds in ipairs { 0.2, 0.4, 0.1 } do
    results[#results + 1] = executor:submit(my_task, seconds)
  end
  for future in futures.as_completed(results) do
    say("%s", future:result())
  end

  -- map yields (index, result) in input order.
  for _, result in executor:map(my_task, { 0.2, 0.4, 0.1 }) do
    say("%s", result)
  end
end   -- leaving the block shuts the executor down and waits for its workers

-- The same with processes: only the constructor changes.
do
  local executor <close> = futures.ProcessPoolExecutor()
  for _, result in executor:map(my_task, { 0.2, 0.1 }) do
    say("%s", result)
  end
end
