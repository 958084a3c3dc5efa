-- Driving futures from a cqueues controller: an object with pollfd,
-- events and timeout methods is something cqueues.poll can wait on, so one
-- cqueues thread waits for futures while others run.
local cqueues = require "cqueues"
local futures = require "futures"

local pool <close> = futures.ThreadPoolExecutor(2)

local source = {
  pollfd = function() return futures.fd() end,
  events = function() return "r" end,
  timeout = function() return futures.timeout() end,
}

local cq = cqueues.new()
local result
cq:wrap(function()              -- drives the futures
  local work = futures.spawn(function()
    local a = pool:submit(function() futures.sleep(0.05); return 20 end)
    local b = pool:submit(function() futures.sleep(0.02); return 22 end)
    return a:result() + b:result()
  end)
  while not work:done() do
    cqueues.poll(source)
    futures.poll()
  end
  result = work:result()
end)
local ticks = 0
cq:wrap(function()              -- a cqueues thread of its own, never blocked
  for _ = 1, 3 do cqueues.sleep(0.01); ticks = ticks + 1 end
end)
assert(cq:loop())
print(("answer: %d, cqueues ticks meanwhile: %d"):format(result, ticks))
