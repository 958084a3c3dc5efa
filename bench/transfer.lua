-- Transfer micro-benchmark: require("futures.core")._roundtrip(v) copies v
-- into a fresh lua_State and back (state creation + 2 encodes + 2
-- decodes).  One copy between two states (what a task's value costs) is
-- taken as (roundtrip - roundtrip of a single integer) / 2: the integer's
-- roundtrip is the state creation and fixed overhead.
-- Used by bench/run.lua; standalone: lua5.4 bench/transfer.lua
local dir = (arg and arg[0] or ""):match("^(.*/)") or "./"
if not package.path:find(dir .. "?.lua", 1, true) then
  package.path = dir .. "?.lua;" .. package.path
end
local futures = require "futures"
local core = require "futures.core"
local C = require "common"

local clock = futures.monotonic
local roundtrip = core._roundtrip

local T = {}

local function time(reps, fn, ...)
  local s = {}
  for r = 1, reps do
    collectgarbage()
    collectgarbage()
    local t0 = clock()
    fn(...)
    s[r] = clock() - t0
  end
  return C.median(s)
end

function T.run()
  local N, SLEN = 200000, 16 * 1024 * 1024
  local res = { n = N, bytes = SLEN }
  res.fixed = time(21, roundtrip, 1)

  local t = C.build(N)
  res.build = time(11, C.build, N)
  res.table_rt = time(11, roundtrip, t)
  local back = roundtrip(t)
  assert(#back == N and back[N] == t[N] and math.type(back[1]) == "float")
  back = nil
  res.table_copy = math.max(res.table_rt - res.fixed, 0) / 2
  t = nil

  local s = string.rep("0123456789abcdef", SLEN // 16)
  res.string_rt = time(7, roundtrip, s)
  assert(roundtrip(s) == s)
  res.string_copy = math.max(res.string_rt - res.fixed, 0) / 2
  -- The machine's own pace: Lua copying the string (s:sub), into memory
  -- the allocator reuses, and into fresh memory (copies kept alive).
  res.lua_copy = time(7, string.sub, s, 1)
  do
    collectgarbage()
    local keep, t0 = {}, clock()
    for i = 1, 4 do keep[i] = s:sub(i) end
    res.lua_fresh = (clock() - t0) / 4
  end
  collectgarbage()
  res.lua_copy_gbs, res.lua_fresh_gbs = SLEN / res.lua_copy / 1e9, SLEN / res.lua_fresh / 1e9
  res.string_gbs = SLEN / res.string_copy / 1e9
  res.string_rt_gbs = SLEN / res.string_rt / 1e9
  return res
end

if arg and arg[0] and arg[0]:match("transfer%.lua$") then
  local r = T.run()
  print(("fixed roundtrip (state + 1 integer): %.1f us"):format(r.fixed * 1e6))
  print(("200,000 floats: Lua builds %.2f ms; roundtrip %.2f ms; one copy %.2f ms (%.2fx build)")
    :format(r.build * 1e3, r.table_rt * 1e3, r.table_copy * 1e3, r.table_copy / r.build))
  print(("16 MiB string: roundtrip %.2f ms (%.2f GB/s); one copy %.2f ms (%.2f GB/s)")
    :format(r.string_rt * 1e3, r.string_rt_gbs, r.string_copy * 1e3, r.string_gbs))
  print(("Lua's own copy of it (s:sub(1)): %.2f GB/s into reused memory, %.2f GB/s into fresh memory")
    :format(r.lua_copy_gbs, r.lua_fresh_gbs))
end

return T
