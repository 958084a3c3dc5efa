-- map's timeout counts from the map call: when a result is not there in
-- time, the loop raises futures.TimeoutError, and leaving the loop cancels
-- the calls that have not started.
local futures = require "futures"

local function slow_square(x)
  futures.sleep(x / 10)
  return x * x
end

local ex <close> = futures.ThreadPoolExecutor(2)
local ok, err = pcall(function()
  for i, square in ex:map(slow_square, { 1, 2, 3, 4, 5, 6 }, { timeout = 0.35 }) do
    print(("call %d returned %d"):format(i, square))
  end
end)
if futures.TimeoutError:is(err) then
  print("gave up: " .. tostring(err))
end
