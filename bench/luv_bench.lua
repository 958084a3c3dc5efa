-- luv's libuv thread pool (Debian lua-luv) on the workloads it can
-- express: it passes only scalars and strings and has no futures, so W1
-- (tiny tasks), W2 (CPU) and W3 (floats packed by hand into a string in
-- the worker and unpacked into a table here).  Run with
-- UV_THREADPOOL_SIZE=2:  lua5.4 bench/luv_bench.lua (w1 N REPS | w2 REPS |
-- w3 TASKS N REPS).  Prints the line protocol of bench/common.lua.
local dir = arg[0]:match("^(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local C = require "common"
local uv = require "luv"

local function clock() return uv.hrtime() / 1e9 end

-- Both pool threads started (a libuv pool starts all its threads at the
-- first queued work) before anything is timed.
local function warm()
  local w = uv.new_work(function() end, function() end)
  for _ = 1, 4 do w:queue() end
  uv.run()
end

local what = arg[1]
local res = {}
warm()

if what == "w1" then
  local n, reps = tonumber(arg[2]), tonumber(arg[3])
  local got
  local work = uv.new_work(C.inc, function(r) got = got + 1 end)
  res.submit = {}
  for r = 0, reps do   -- round 0 untimed, as in bench/workloads.lua
    collectgarbage()
    got = 0
    local t0 = clock()
    for i = 1, n do work:queue(i) end
    uv.run()
    if r > 0 then res.submit[r] = (clock() - t0) / n end
    assert(got == n)
  end
elseif what == "w2" then
  local reps = tonumber(arg[2])
  local items = {}
  for _ = 1, 2 do
    for _, p in ipairs(C.PRIMES) do items[#items + 1] = p end
  end
  -- luv hands numbers to a worker as floats; convert back, or the trial
  -- division would run on floats (fmod), several times slower.
  local function is_prime(n)
    n = math.tointeger(n)
    if n < 2 then return false end
    if n == 2 then return true end
    if n % 2 == 0 then return false end
    local r = math.floor(math.sqrt(n))
    for i = 3, r, 2 do
      if n % i == 0 then return false end
    end
    return true
  end
  local got
  local work = uv.new_work(is_prime, function() got = got + 1 end)
  res.pool = {}
  for r = 1, reps do
    got = 0
    local t0 = clock()
    for _, p in ipairs(items) do work:queue(p) end
    uv.run()
    res.pool[r] = clock() - t0
    assert(got == #items)
  end
elseif what == "w3" then
  local tasks, n, reps = tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
  assert(n % 1000 == 0)
  -- Worker: build the table, pack it 1000 doubles at a time.
  local function produce(count)
    local t = {}
    for i = 1, count do t[i] = i + 0.5 end
    local fmt, parts = "<" .. string.rep("d", 1000), {}
    for i = 1, count, 1000 do
      parts[#parts + 1] = string.pack(fmt, table.unpack(t, i, i + 999))
    end
    return table.concat(parts)
  end
  local fmt = "<" .. string.rep("d", 1000)
  local got
  local work = uv.new_work(produce, function(s)
    local t, pos = {}, 1
    for i = 1, #s // 8, 1000 do
      local v = { string.unpack(fmt, s, pos) }
      pos = v[1001]
      table.move(v, 1, 1000, i, t)
    end
    assert(#t == n)
    got = got + 1
  end)
  res.pool = {}
  for r = 0, reps do   -- round 0 untimed, as in bench/workloads.lua
    collectgarbage()
    got = 0
    local t0 = clock()
    for _ = 1, tasks do work:queue(n) end
    uv.run()
    if r > 0 then res.pool[r] = clock() - t0 end
    assert(got == tasks)
  end
else
  error("usage: luv_bench.lua (w1 N REPS | w2 REPS | w3 TASKS N REPS)")
end

for k, v in pairs(res) do C.emit(k, v) end
