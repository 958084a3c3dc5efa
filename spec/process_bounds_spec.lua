-- ProcessPoolExecutor under pressure on what a pool holds: a new function
-- per call (the code caches of the proxy and the worker stay bounded, and
-- cost the same per call however many came before), too few descriptors
-- for all the workers asked for, and a stdout that closes under a task.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
-- Under `make sanitize`/`make tsan` the worker keeps freed memory in
-- quarantine: its resident set says nothing about what it holds.
local test_lua = os.getenv("FUTURES_TEST_LUA")
local SANITIZED = test_lua ~= nil and test_lua ~= "lua5.4"
local contains = helpers.contains

-- The resident set of process pid, in kB.
local function rss_kb(pid)
  local fh = assert(io.open("/proc/" .. pid .. "/status"))
  local s = fh:read("a")
  fh:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- Runs calls first..last, each with a function of its own (loaded from
-- source, so each has code no other call has), and checks every result.
local function distinct_calls(px, first, last)
  local fs = {}
  for i = first, last do
    local fn = assert(load("return function() return " .. i .. " end"))()
    fs[#fs + 1] = px:submit(fn)
  end
  for k, f in ipairs(fs) do assert.equal(first + k - 1, f:result(LONG)) end
end

describe("ProcessPoolExecutor bounds", function()
  it("a new function per call: bounded worker memory, the same cost per call", function()
    local px <close> = futures.ProcessPoolExecutor(1)
    local N = 20000
    distinct_calls(px, 1, 1000)   -- warm up: the cache fills, the heap settles
    local pid = px:_pids()[1]
    local t0 = futures.monotonic()
    distinct_calls(px, 1001, 1000 + N)
    local t1, rss1 = futures.monotonic(), rss_kb(pid)
    distinct_calls(px, 1001 + N, 1000 + 2 * N)   -- in batches of N: as many
    distinct_calls(px, 1001 + 2 * N, 1000 + 3 * N) -- futures alive at a time
    local t2, rss2 = futures.monotonic(), rss_kb(pid)
    assert.equal(pid, px:_pids()[1])
    -- The worker keeps at most a bounded set of code blobs: 2N more
    -- functions grow it by far less than they would cost kept (~6 MB).
    assert.is_true(SANITIZED or rss2 - rss1 < 1024, ("worker grew from %d kB to %d kB"):format(rss1, rss2))
    -- Lookups do not slow down as functions accumulate.
    local first, second = t1 - t0, t2 - t1
    assert.is_true(second < 3 * first,
      ("%d calls took %.2f s, the %d after them %.2f s"):format(N, first, 2 * N, second))
  end)

  -- Runs script in a child interpreter under the shell prefix `pre`
  -- (a ulimit, a pipe); returns what it wrote to the file named by OUT.
  local function child(pre, script, post)
    local out = os.tmpname()
    local cmd = ("%s; OUT=%s %s %s -e %s %s"):format(pre, helpers.shell_quote(out), helpers.child_env(),
      helpers.LUA, helpers.shell_quote(script), post or "")
    local p = assert(io.popen("timeout -s KILL 240 sh -c " .. helpers.shell_quote(cmd) .. " 2>&1", "r"))
    local said = p:read("a")
    p:close()
    local fh = assert(io.open(out))
    local got = fh:read("a")
    fh:close()
    os.remove(out)
    return got, said
  end

  it("out of descriptors: the workers it has run every call", function()
    -- 150 calls that all wait at once ask for 150 workers; 200 descriptors
    -- give about 60.  The calls the others could not start run on those.
    local got, said = child("ulimit -n 200", [[
      local futures = require "futures"
      local helpers = require "helpers"
      -- opened first: the pool may take every descriptor left
      local fh = assert(io.open(os.getenv("OUT"), "w"))
      local g = helpers.gate()
      local made = g.path .. ".made"   -- the gate opens by a rename, which needs no descriptor
      assert(io.open(made, "w")):close()
      local px <close> = futures.ProcessPoolExecutor(100000)
      local fs = {}
      for i = 1, 150 do
        fs[i] = px:submit(function(p, x) require("helpers").await_gate(p); return x end, g.path, i)
      end
      assert(os.rename(made, g.path))
      local ok, bad = 0, {}
      for i, f in ipairs(fs) do
        local e = f:exception(helpers.LONG)
        if e == nil and f:result() == i then ok = ok + 1 else bad[#bad + 1] = tostring(e) end
      end
      g.close()
      fh:write(ok, " ", #px:_pids() < 150 and "fewer" or "all", "\n", bad[1] or "")
      fh:close()
    ]])
    assert.equal("150 fewer\n", got, said)
  end)

  it("a stdout whose reader left fails the task's write, not the pool", function()
    local got, said = child("true", [[
      local futures = require "futures"
      local px <close> = futures.ProcessPoolExecutor(1)
      local f = px:submit(function()
        local line = string.rep("x", 99) .. "\n"
        for _ = 1, 10000 do   -- far more than the pipe holds
          local ok, err = io.stdout:write(line)
          if not ok then return err end
          io.stdout:flush()
        end
        return "all written"
      end)
      local e1 = f:exception(10)
      local r1 = e1 == nil and f:result() or tostring(e1)
      local g = px:submit(function() return "alive" end)
      local e2 = g:exception(10)
      local fh = io.open(os.getenv("OUT"), "w")
      fh:write(r1, "\n", e2 == nil and g:result() or tostring(e2))
      fh:close()
    ]], "| true")
    contains(got .. said, "Broken pipe\nalive")
  end)
end)
