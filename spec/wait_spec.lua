-- futures.wait and futures.as_completed (docs/reference.md "Module functions"):
-- return_when modes, timeouts, duplicates, keyed tables, input order, and
-- many futures at once.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local gate, await_gate = helpers.gate, helpers.await_gate
local raises, arg_error = helpers.raises, helpers.arg_error

local function failing() error("failed on purpose") end

describe("futures.wait", function()
  local ex
  setup(function() ex = futures.ThreadPoolExecutor(4) end)
  teardown(function() ex:shutdown() end)

  it("waits for all by default; done in input order", function()
    local fs = {}
    for i = 1, 8 do fs[i] = ex:submit(function(x) futures.sleep((8 - x) * 0.002); return x end, i) end
    local done, not_done = futures.wait(fs)
    assert.same(fs, done)
    assert.same({}, not_done)
    for i, f in ipairs(done) do assert.equal(i, f:result(0)) end
    done, not_done = futures.wait(fs, nil, futures.ALL_COMPLETED)
    assert.same(fs, done)
    assert.same({}, not_done)
  end)

  it("returns at the timeout without raising, not_done in input order", function()
    local g <close> = gate()
    local quick = ex:submit(function() return 1 end)
    quick:result(LONG)
    local slow1 = ex:submit(await_gate, g.path)
    local slow2 = ex:submit(await_gate, g.path)
    local done, not_done = futures.wait({ slow2, quick, slow1 }, 0.05)
    assert.same({ quick }, done)
    assert.same({ slow2, slow1 }, not_done)
    -- timeout 0 and negative timeouts do not wait
    done, not_done = futures.wait({ slow1 }, 0)
    assert.same({}, done); assert.same({ slow1 }, not_done)
    done, not_done = futures.wait({ slow1, quick }, -1)
    assert.same({ quick }, done); assert.same({ slow1 }, not_done)
    g.open()
    done, not_done = futures.wait({ slow2, quick, slow1 }, LONG)
    assert.same({ slow2, quick, slow1 }, done)
    assert.same({}, not_done)
  end)

  it("FIRST_COMPLETED returns when one is done", function()
    local g <close> = gate()
    local slow = ex:submit(await_gate, g.path)
    local quick = ex:submit(function() return 1 end)
    local done, not_done = futures.wait({ slow, quick }, LONG, futures.FIRST_COMPLETED)
    assert.same({ quick }, done)
    assert.same({ slow }, not_done)
    -- already-done futures satisfy it at once
    done, not_done = futures.wait({ slow, quick }, 0, futures.FIRST_COMPLETED)
    assert.same({ quick }, done)
    -- a cancelled future counts as completed
    local c = futures.Future()
    c:cancel()
    done = futures.wait({ slow, c }, LONG, futures.FIRST_COMPLETED)
    assert.same({ c }, done)
    g.open()
    assert.is_true(slow:result(LONG))
  end)

  it("FIRST_EXCEPTION returns at the first failure", function()
    local g <close> = gate()
    local slow = ex:submit(await_gate, g.path)
    local ok = ex:submit(function() return 1 end)
    ok:result(LONG)
    local bad = ex:submit(failing)
    local done, not_done = futures.wait({ slow, ok, bad }, LONG, futures.FIRST_EXCEPTION)
    assert.same({ ok, bad }, done)
    assert.same({ slow }, not_done)
    g.open()
    slow:result(LONG)
  end)

  it("FIRST_EXCEPTION is ALL_COMPLETED when nothing fails, and ignores cancels", function()
    local g <close> = gate()
    local a = ex:submit(function() return 1 end)
    local b = ex:submit(await_gate, g.path)
    local c = futures.Future()
    c:cancel()
    local done, not_done = futures.wait({ a, b, c }, 0.05, futures.FIRST_EXCEPTION)
    assert.equal(1, #not_done)
    assert.equal(b, not_done[1])
    assert.equal(2, #done)
    g.open()
    done, not_done = futures.wait({ a, b, c }, LONG, futures.FIRST_EXCEPTION)
    assert.same({ a, b, c }, done)
    assert.same({}, not_done)
  end)

  it("FIRST_EXCEPTION counts a TransferError and a local set_exception", function()
    local g <close> = gate()
    local slow = ex:submit(await_gate, g.path)
    local bad = ex:submit(function() return io.stdout end)
    local done = futures.wait({ slow, bad }, LONG, futures.FIRST_EXCEPTION)
    assert.same({ bad }, done)
    local f = futures.Future()
    local t = ex:submit(function() return 1 end)
    t:add_done_callback(function() f:set_exception("local") end)
    done = futures.wait({ slow, f }, LONG, futures.FIRST_EXCEPTION)
    assert.same({ f }, done)
    g.open()
    slow:result(LONG)
  end)

  it("removes duplicates", function()
    local f = ex:submit(function() return 1 end)
    local g = ex:submit(function() return 2 end)
    local done, not_done = futures.wait({ f, g, f, f, g })
    assert.same({ f, g }, done)
    assert.same({}, not_done)
  end)

  it("takes a table keyed by futures", function()
    local url_of = {}
    for i = 1, 5 do url_of[ex:submit(function(x) return x end, i)] = "url" .. i end
    local done, not_done = futures.wait(url_of)
    assert.equal(5, #done)
    assert.same({}, not_done)
    local seen = {}
    for _, f in ipairs(done) do
      assert.equal("url" .. f:result(), url_of[f])
      seen[f] = true
    end
    for f in pairs(url_of) do assert.is_true(seen[f]) end
  end)

  it("returns two empty tables for no futures", function()
    local done, not_done = futures.wait({})
    assert.same({}, done)
    assert.same({}, not_done)
  end)

  it("rejects bad arguments", function()
    local f = futures.Future()
    arg_error({ "#1", "wait" }, futures.wait, nil)
    arg_error({ "#1", "wait" }, futures.wait, { 1, 2 })
    arg_error({ "#1", "wait" }, futures.wait, { f, "x" })
    arg_error({ "#2", "wait", "timeout" }, futures.wait, { f }, "1")
    arg_error({ "#3", "wait", "return_when" }, futures.wait, { f }, 0, 42)
    arg_error({ "#3", "wait" }, futures.wait, { f }, 0, "FIRST_COMPLETED")
  end)

  it("handles 10,000 futures", function()
    local fs = {}
    for i = 1, 10000 do fs[i] = ex:submit(function(x) return x end, i) end
    local done, not_done = futures.wait(fs, LONG * 3)
    assert.equal(10000, #done)
    assert.equal(0, #not_done)
    for i = 1, 10000 do assert.equal(fs[i], done[i]) end
    local sum = 0
    for i = 1, 10000 do sum = sum + done[i]:result(0) end
    assert.equal(10000 * 10001 // 2, sum)
  end)
end)

describe("futures.as_completed", function()
  local ex
  setup(function() ex = futures.ThreadPoolExecutor(4) end)
  teardown(function() ex:shutdown() end)

  it("yields each future once, as it completes, those already done first", function()
    local single <close> = futures.ThreadPoolExecutor(1)
    local g1 <close> = gate()
    local g2 <close> = gate()
    local done_before = ex:submit(function() return "early" end)
    done_before:result(LONG)
    local second = single:submit(await_gate, g2.path)
    local first = ex:submit(await_gate, g1.path)
    local order = {}
    for f in futures.as_completed({ second, first, done_before }, LONG) do
      order[#order + 1] = f
      -- release the next one only once this one was yielded
      if f == done_before then g1.open() elseif f == first then g2.open() end
    end
    assert.same({ done_before, first, second }, order)
  end)

  it("yields done futures in input order first", function()
    local a, b, c = futures.Future(), futures.Future(), futures.Future()
    c:set_result(3); a:set_result(1); b:cancel()
    local order = {}
    for f in futures.as_completed({ a, b, c }) do order[#order + 1] = f end
    assert.same({ a, b, c }, order)
  end)

  it("raises TimeoutError after the timeout, having yielded the done ones", function()
    local g <close> = gate()
    local quick = ex:submit(function() return 1 end)
    quick:result(LONG)
    local slow = ex:submit(await_gate, g.path)
    local got = {}
    local ok, e = pcall(function()
      for f in futures.as_completed({ quick, slow }, 0.05) do got[#got + 1] = f end
    end)
    assert.is_false(ok)
    assert.is_true(futures.TimeoutError:is(e), tostring(e))
    helpers.contains(e.message, "1 (of 2)")
    assert.same({ quick }, got)
    -- timeout 0: only the done ones
    got = {}
    ok = pcall(function()
      for f in futures.as_completed({ slow, quick }, 0) do got[#got + 1] = f end
    end)
    assert.is_false(ok)
    assert.same({ quick }, got)
    g.open()
    slow:result(LONG)
  end)

  it("counts the timeout from the call, not per future", function()
    local g <close> = gate()
    local fs = {}
    for i = 1, 3 do fs[i] = ex:submit(await_gate, g.path) end
    local it = futures.as_completed(fs, 0.05)
    futures.sleep(0.06)   -- the deadline has passed: the first step raises
    raises(futures.TimeoutError, it)
    g.open()
    futures.wait(fs)
  end)

  it("removes duplicates and takes keyed tables", function()
    local a = ex:submit(function() return 1 end)
    local b = ex:submit(function() return 2 end)
    local n, seen = 0, {}
    for f in futures.as_completed({ a, b, a, b, a }, LONG) do
      assert.is_nil(seen[f]); seen[f] = true; n = n + 1
    end
    assert.equal(2, n)
    local keyed = { [a] = "a", [b] = "b" }
    local names = {}
    for f in futures.as_completed(keyed, LONG) do names[#names + 1] = keyed[f] end
    table.sort(names)
    assert.same({ "a", "b" }, names)
  end)

  it("yields nothing for no futures", function()
    for _ in futures.as_completed({}) do error("nothing expected") end
  end)

  it("can be left early and garbage collected", function()
    local g <close> = gate()
    local fs = { ex:submit(function() return 1 end), ex:submit(await_gate, g.path) }
    for f in futures.as_completed(fs, LONG) do
      assert.equal(fs[1], f)
      break
    end
    local it = futures.as_completed(fs, LONG)
    assert.equal(fs[1], it())
    it = nil
    collectgarbage()
    g.open()
    -- the futures complete fine after their waiters went away
    assert.is_true(fs[2]:result(LONG))
  end)

  it("serves several iterators and waits over the same futures", function()
    local gs, fs = {}, {}
    for i = 1, 4 do
      gs[i] = gate()
      fs[i] = ex:submit(await_gate, gs[i].path)
    end
    local it1 = futures.as_completed(fs, LONG)
    local it2 = futures.as_completed({ fs[4], fs[3], fs[2], fs[1] }, LONG)
    for i = 1, 4 do
      gs[i].open()
      assert.equal(fs[i], it1())
      assert.equal(fs[i], it2())
      local done = futures.wait(fs, LONG, futures.FIRST_COMPLETED)
      assert.equal(i, #done)
    end
    assert.is_nil(it1())
    assert.is_nil(it2())
    for i = 1, 4 do gs[i].close() end
  end)

  it("yields a future that a callback cancels meanwhile", function()
    local single <close> = futures.ThreadPoolExecutor(1)
    local g <close> = gate()
    local blocker = single:submit(await_gate, g.path)
    local victim = single:submit(function() return 1 end)
    local t = ex:submit(function() return "tick" end)
    t:add_done_callback(function() victim:cancel() end)
    local got = {}
    for f in futures.as_completed({ victim, t }, LONG) do got[#got + 1] = f end
    assert.equal(2, #got)
    assert.is_true(victim:cancelled())
    g.open()
    blocker:result(LONG)
  end)

  it("rejects bad arguments", function()
    arg_error({ "#1", "as_completed" }, futures.as_completed, "x")
    arg_error({ "#1", "as_completed" }, futures.as_completed, { 42 })
    arg_error({ "#2", "as_completed" }, futures.as_completed, {}, {})
  end)

  it("handles 10,000 futures, each yielded once", function()
    local fs = {}
    for i = 1, 10000 do fs[i] = ex:submit(function(x) return x end, i) end
    local seen, n, sum = {}, 0, 0
    for f in futures.as_completed(fs, LONG * 3) do
      assert.is_nil(seen[f])
      seen[f] = true
      n = n + 1
      sum = sum + f:result(0)
    end
    assert.equal(10000, n)
    assert.equal(10000 * 10001 // 2, sum)
  end)
end)
