-- A progress bar fed through a queue: the workers of a map report each
-- step they finish, and the caller draws the bar (with \r) as the reports
-- come in, while the map runs.
local futures = require "futures"

local STEPS, JOBS = 10, 8

local function job(progress, n)
  local sum = 0
  for step = 1, STEPS do
    for i = 1, 20000 do sum = sum + (i * n) % 7 end
    progress:put(1)                 -- one step done, from whichever worker
  end
  return sum
end

local function bar(done, total)
  local width = 30
  local full = done * width // total
  return ("\r[%s%s] %3d%%"):format(("#"):rep(full), ("."):rep(width - full), done * 100 // total)
end

local ex <close> = futures.ThreadPoolExecutor(2)     -- or ProcessPoolExecutor(2)
local progress = futures.Queue()
local inputs = {}
for i = 1, JOBS do inputs[i] = i end
-- map's calls run while the caller reads the queue: the bar moves with them
local results = futures.spawn(function()
  local t = {}
  for i, v in ex:map(function(n) return job(progress, n) end, inputs) do t[i] = v end
  progress:close()                  -- every call is done: the bar is full
  return t
end)
local done, total = 0, STEPS * JOBS
for _ in progress:iter() do
  done = done + 1
  io.write(bar(done, total))
  io.flush()
end
io.write("\n")
local sums = results:result()
print(("%d steps of %d jobs reported; %d results"):format(done, JOBS, #sums))
