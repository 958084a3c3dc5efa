-- futures.wait() returns two sequences: the futures done and those not done.
-- return_when says when to return: ALL_COMPLETED (the default),
-- FIRST_COMPLETED, or FIRST_EXCEPTION.
-- Python: "A quick introduction to the concurrent.futures module"
local futures = require "futures"

local function return_after(num, seconds, fail)
  futures.sleep(seconds)
  if fail then error(("task %d failed"):format(num), 0) end
  return ("Return of %d"):format(num)
end

local pool <close> = futures.ThreadPoolExecutor(5)

-- Lists what a wait returned: each future with its outcome, or its state.
local function show(title, done, not_done)
  print(title)
  for _, f in ipairs(done) do
    local e = f:exception()
    print("  done:     " .. (e and "error: " .. tostring(e) or f:result()))
  end
  for _, f in ipairs(not_done) do print("  not done: " .. tostring(f)) end
end

-- ALL_COMPLETED: returns when every future is done.
local fs = {}
for x = 0, 4 do fs[#fs + 1] = pool:submit(return_after, x, math.random(1, 3) / 10) end
show("ALL_COMPLETED", futures.wait(fs))

-- FIRST_COMPLETED: returns as soon as one of them is done.
fs = { pool:submit(return_after, 1, 0.3), pool:submit(return_after, 2, 0.1),
       pool:submit(return_after, 3, 0.5) }
show("FIRST_COMPLETED", futures.wait(fs, nil, futures.FIRST_COMPLETED))

-- FIRST_EXCEPTION: returns when one of them fails (or when all are done).
fs = { pool:submit(return_after, 1, 0.1), pool:submit(return_after, 2, 0.2, true),
       pool:submit(return_after, 3, 0.5) }
show("FIRST_EXCEPTION", futures.wait(fs, nil, futures.FIRST_EXCEPTION))

-- A timeout never raises: wait just returns what is done by then.
fs = { pool:submit(return_after, 1, 0.3) }
show("timeout 0.1", futures.wait(fs, 0.1))
