-- A Future is not done() until its call has returned; result() waits for it.
-- Python: "A quick introduction to the concurrent.futures module" (threads)
local futures = require "futures"

local function return_after_a_while(message)
  futures.sleep(0.3)
  return message
end

local pool <close> = futures.ThreadPoolExecutor(3)
local future = pool:submit(return_after_a_while, "hello")
print(future:done())        --> false: the task is still sleeping
futures.sleep(0.5)
print(future:done())        --> true
print(future:result())      --> hello
