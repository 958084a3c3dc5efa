-- CPU-bound work on a process pool: map(is_prime, PRIMES), timed against
-- plain sequential Lua.  Python: the is_prime example of the docs.
local futures = require "futures"

local PRIMES = {
  112272535095293,
  112582705942171,
  112272535095293,
  115280095190773,
  115797848077099,
  1099726899285419,
}

local function is_prime(n)
  if n % 2 == 0 then return false end
  local sqrt_n = math.floor(math.sqrt(n))
  for i = 3, sqrt_n, 2 do
    if n % i == 0 then return false end
  end
  return true
end

local t0 = futures.monotonic()
for _, n in ipairs(PRIMES) do is_prime(n) end
local sequential = futures.monotonic() - t0

t0 = futures.monotonic()
do
  local executor <close> = futures.ProcessPoolExecutor()
  for i, prime in executor:map(is_prime, PRIMES) do
    print(("%d is prime: %s"):format(PRIMES[i], prime))
  end
end
local parallel = futures.monotonic() - t0

print(("sequential %.2f s, %d processes %.2f s: %.1fx faster"):format(
  sequential, futures.cpu_count(), parallel, sequential / parallel))
