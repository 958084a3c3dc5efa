-- The headline example (`make demo`): the same CPU-bound work on plain
-- sequential Lua, on a ThreadPoolExecutor (one private lua_State per
-- thread, so no lock stops them running in parallel) and on a
-- ProcessPoolExecutor, with the speed-up of each against sequential Lua.
local futures = require "futures"

-- The numbers of Python's is_prime example, checked several times over so
-- that every core has work.
local PRIMES = {
  112272535095293, 112582705942171, 112272535095293,
  115280095190773, 115797848077099, 1099726899285419,
}
local ROUNDS = 4
local numbers = {}
for _ = 1, ROUNDS do
  for _, n in ipairs(PRIMES) do numbers[#numbers + 1] = n end
end

local function is_prime(n)
  if n % 2 == 0 then return false end
  local sqrt_n = math.floor(math.sqrt(n))
  for i = 3, sqrt_n, 2 do
    if n % i == 0 then return false end
  end
  return true
end

-- Runs check() and returns its results (a sequence) and the seconds taken.
local function timed(check)
  local t0 = futures.monotonic()
  local results = check()
  return results, futures.monotonic() - t0
end

local expected, sequential = timed(function()
  local r = {}
  for i, n in ipairs(numbers) do r[i] = is_prime(n) end
  return r
end)
for i, n in ipairs(PRIMES) do print(("%d is prime: %s"):format(n, expected[i])) end

local workers = futures.cpu_count()
print(("\n%d numbers, %d workers"):format(#numbers, workers))
print(("%-22s %6.2f s"):format("sequential Lua", sequential))

for _, kind in ipairs { "ThreadPoolExecutor", "ProcessPoolExecutor" } do
  local results, seconds = timed(function()
    -- the pool is part of the measure: starting workers is not free
    local ex <close> = futures[kind](workers)
    local r = {}
    for i, prime in ex:map(is_prime, numbers) do r[i] = prime end
    return r
  end)
  for i = 1, #numbers do assert(results[i] == expected[i], "wrong result") end
  print(("%-22s %6.2f s  %4.1fx"):format(kind, seconds, sequential / seconds))
end
