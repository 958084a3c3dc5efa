-- The same with a process pool: same API, the call runs in another process.
-- Python: "A quick introduction to the concurrent.futures module" (processes)
local futures = require "futures"

local function return_after_a_while(message)
  futures.sleep(0.3)
  return message
end

local pool <close> = futures.ProcessPoolExecutor(3)
local future = pool:submit(return_after_a_while, "hello")
print(future:done())        --> false
futures.sleep(0.5)
print(future:done())        --> true
print("Result: " .. future:result())
