-- ProcessPoolExecutor scheduling: no call and no result ever waits behind
-- another call while a worker could take it.  Calls are not sent ahead to
-- a worker before any call was timed, a call sent ahead is taken back when
-- the one before it runs long and another worker is free, and a result
-- leaves its worker as soon as its call ends.  Long calls wait on gates,
-- so every check is on events, not on time.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local gate = helpers.gate

-- A task that says it started (a file next to the gate's), then waits.
local function gated(p, v)
  io.open(p .. ".in", "w"):close()
  require("helpers").await_gate(p)
  return v
end

-- Waits until a gated task runs in its worker (not merely sent to one).
local function wait_started(g)
  helpers.wait_until(function()
    local fh = io.open(g.path .. ".in")
    if fh then fh:close() end
    return fh ~= nil
  end, LONG, "the task to start in its worker")
end

local function cleanup(g) os.remove(g.path .. ".in"); g.close() end

local function tiny(i) return i end

-- Warms a pool up with tiny calls: every worker started and timed.
local function warm(px, n)
  local fs = {}
  for i = 1, n or 2000 do fs[i] = px:submit(tiny, i) end
  for i, f in ipairs(fs) do assert.equal(i, f:result(LONG)) end
end

local function all_done(fs, timeout)
  local done, not_done = futures.wait(fs, timeout or LONG)
  return #not_done == 0, done
end

describe("ProcessPoolExecutor scheduling", function()
  it("a fresh pool sends no call to a worker busy with a long one", function()
    local g = gate()
    local px <close> = futures.ProcessPoolExecutor(3)
    local long = px:submit(gated, g.path, "long")
    local shorts = {}
    for i = 1, 4 do shorts[i] = px:submit(tiny, i) end
    local ok = all_done(shorts)
    local long_done = long:done()
    g.open()
    assert.equal("long", long:result(LONG))
    cleanup(g)
    assert.is_true(ok, "a short call waited behind the long one")
    assert.is_false(long_done)
  end)

  it("as_completed on a fresh pool of 2 yields in the order the calls end", function()
    local g1, g3 = gate(), gate()
    local px <close> = futures.ProcessPoolExecutor(2)
    local f1 = px:submit(gated, g1.path, 1)
    local f2 = px:submit(tiny, 2)
    local f3 = px:submit(gated, g3.path, 3)
    -- f3 must start on the worker that ran f2, not wait behind f1.
    local ok, err = pcall(wait_started, g3)
    g3.open()
    local order = {}
    for f in futures.as_completed({ f1, f2, f3 }, LONG) do
      order[#order + 1] = f:result()
      if #order == 2 then g1.open() end
    end
    cleanup(g1); cleanup(g3)
    assert.is_true(ok, err)
    assert.same({ 2, 3, 1 }, order)
  end)

  it("a quick call's result does not wait for the next call to end", function()
    local g = gate()
    local px <close> = futures.ProcessPoolExecutor(1)
    px:submit(function() end):result(LONG)
    local quick = px:submit(function() return "quick" end)
    local slow = px:submit(gated, g.path, "slow")
    local ok, v = pcall(quick.result, quick, LONG)
    g.open()
    assert.equal("slow", slow:result(LONG))
    cleanup(g)
    assert.is_true(ok, tostring(v))
    assert.equal("quick", v)
  end)

  it("calls sent ahead behind a call that turns out long move to a free worker", function()
    local g = gate()
    local px <close> = futures.ProcessPoolExecutor(2)
    warm(px)
    -- A stream of tiny calls with one long call in the middle: the worker
    -- that takes it has tiny calls sent ahead behind it.
    local before, after = {}, {}
    for i = 1, 200 do before[i] = px:submit(tiny, i) end
    local long = px:submit(gated, g.path, "long")
    for i = 1, 200 do after[i] = px:submit(tiny, i) end
    local ok1 = all_done(before)
    local ok2 = all_done(after)
    local long_done = long:done()
    g.open()
    assert.equal("long", long:result(LONG))
    cleanup(g)
    assert.is_true(ok1 and ok2, "a tiny call stayed behind the long one")
    assert.is_false(long_done)
    for i = 1, 200 do assert.equal(i, after[i]:result(0)) end
  end)

  it("many tiny calls then a long one: no tiny result stranded behind it", function()
    local g = gate()
    local px <close> = futures.ProcessPoolExecutor(1)
    warm(px, 100)
    local fs = {}
    for i = 1, 5000 do fs[i] = px:submit(tiny, i) end
    local long = px:submit(gated, g.path, "long")
    local ok = all_done(fs)
    local long_done = long:done()
    g.open()
    assert.equal("long", long:result(LONG))
    cleanup(g)
    assert.is_true(ok, "tiny results waited for the long call")
    assert.is_false(long_done)
  end)

  it("tiny and long calls with random cancels: each call runs at most once, never if cancelled", function()
    local log = os.tmpname()
    local px <close> = futures.ProcessPoolExecutor(3)
    warm(px, 500)
    math.randomseed(42)
    local fs, cancelled = {}, {}
    local function task(path, i, t)
      if t > 0 then require("futures").sleep(t) end
      local fh = io.open(path, "a")
      fh:write(i, "\n")
      fh:close()
      return i
    end
    for i = 1, 600 do
      local t = math.random() < 0.05 and 0.02 or 0
      fs[i] = px:submit(task, log, i, t)
      if math.random() < 0.2 then
        local j = math.random(1, i)
        if fs[j]:cancel() then cancelled[j] = true end
      end
    end
    local ok = all_done(fs)
    assert.is_true(ok)
    local runs = {}
    for line in io.lines(log) do
      local i = tonumber(line)
      runs[i] = (runs[i] or 0) + 1
    end
    os.remove(log)
    for i, f in ipairs(fs) do
      if cancelled[i] then
        assert.is_true(f:cancelled())
        assert.is_nil(runs[i], "cancelled call " .. i .. " ran")
      else
        assert.equal(i, f:result(0))
        assert.equal(1, runs[i], "call " .. i .. " ran " .. tostring(runs[i]) .. " times")
      end
    end
  end)
end)
