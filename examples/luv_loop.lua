-- Driving futures from luv's event loop: futures.fd() is readable while
-- futures.poll() has work (a finished call to hand to a coroutine or a
-- callback), futures.timeout() says when the next sleep or timeout is due.
-- A poll handle and a timer are all the glue there is; the loop never
-- blocks on the pool.
local uv = require "luv"
local futures = require "futures"

local pool <close> = futures.ThreadPoolExecutor(2)

local poller, timer = uv.new_poll(futures.fd()), uv.new_timer()
local function drive()
  futures.poll()
  timer:stop()
  local t = futures.timeout()
  if t then timer:start(math.ceil(t * 1000), 0, drive) end
end
poller:start("r", drive)

-- A luv timer of its own keeps ticking while the work is done.
local ticks = 0
local ticker = uv.new_timer()
ticker:start(10, 10, function() ticks = ticks + 1 end)

futures.spawn(function()
  local squares = {}
  for i, r in pool:map(function(x) futures.sleep(0.02); return x * x end, { 1, 2, 3, 4 }) do
    squares[i] = r
  end
  futures.sleep(0.05)       -- a timer of futures', through futures.timeout()
  print("squares: " .. table.concat(squares, " "))
  print(("luv's own timer ticked meanwhile: %s"):format(ticks > 0 and "yes" or "no"))
  poller:close()
  timer:close()
  ticker:close()
end)
drive()
uv.run()
print("loop done")
