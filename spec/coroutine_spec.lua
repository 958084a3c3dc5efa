-- Coroutines and event loops (docs/reference.md "Coroutines and event
-- loops"): futures.spawn and futures.run, waits that suspend only the
-- coroutine, poll() resuming them, cancellation at the suspension point,
-- futures.fd and futures.timeout driving it all from a foreign loop.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local gate, await_gate = helpers.gate, helpers.await_gate
local raises = helpers.raises

local POOLS = {
  threads = function() return futures.ThreadPoolExecutor(2) end,
  processes = function() return futures.ProcessPoolExecutor(2) end,
}

for kind, make in pairs(POOLS) do
  describe("a spawned coroutine on " .. kind, function()
    local ex
    setup(function() ex = make() end)
    teardown(function() ex:shutdown(true) end)

    it("runs at once up to its first wait, and only it waits", function()
      local g <close> = gate()
      local steps = {}
      local f = futures.spawn(function(a, b)
        steps[#steps + 1] = "started " .. a .. b
        local r = ex:submit(function(path) await_gate(path); return "gated" end, g.path):result()
        steps[#steps + 1] = "resumed with " .. r
        return r, #steps
      end, "x", "y")
      assert.same({ "started xy" }, steps)   -- spawn returned at its wait
      assert.is_false(f:done())
      assert.is_true(f:running())
      assert.equal(0, futures.poll())       -- nothing due: nothing resumed
      g.open()
      assert.same({ "gated", 2 }, { f:result(LONG) })   -- the main thread's wait resumes it
      assert.same({ "started xy", "resumed with gated" }, steps)
    end)

    it("suspends at every blocking call, at any depth, with the same outcomes", function()
      local function deep(n, fn) if n == 0 then return fn() end return (deep(n - 1, fn)) end
      local f = futures.spawn(function()
        local out = {}
        out.result = deep(5, function() return ex:submit(function() return 7 end):result() end)
        out.exception = ex:submit(function() error("boom", 0) end):exception()
        local ok, e = pcall(function() return ex:submit(function() error("raised", 0) end):result() end)
        out.raised = not ok and e:match("^raised")
        local done, not_done = futures.wait({ ex:submit(function() return 1 end) })
        out.wait = #done .. "/" .. #not_done
        local n = 0
        for g in futures.as_completed({ ex:submit(function() return 2 end), ex:submit(function() return 3 end) }) do
          n = n + g:result()
        end
        out.as_completed = n
        local sum = 0
        for _, r in ex:map(function(x) return x * x end, { 1, 2, 3 }) do sum = sum + r end
        out.map = sum
        local t = futures.monotonic()
        futures.sleep(0.02)
        out.slept = futures.monotonic() - t >= 0.02
        return out
      end)
      local out = f:result(LONG)
      assert.same({ result = 7, exception = "boom", raised = "raised", wait = "1/0",
                    as_completed = 5, map = 14, slept = true }, out)
    end)

    it("gets TimeoutError at its wait when the timeout passes", function()
      local g <close> = gate()
      local slow = ex:submit(await_gate, g.path)
      local f = futures.spawn(function()
        local t = futures.monotonic()
        local e = raises(futures.TimeoutError, slow.result, slow, 0.05)
        local e2 = raises(futures.TimeoutError, function()
          for _ in futures.as_completed({ slow }, 0.05) do end
        end)
        local done, not_done = futures.wait({ slow }, 0.05)
        return futures.monotonic() - t, e.message, e2.message, #done, #not_done
      end)
      local took, m1, m2, nd, nn = f:result(LONG)
      g.open()
      assert.is_true(took >= 0.15 and took < LONG, tostring(took))
      assert.equal("the future did not complete in time", m1)
      assert.equal("1 (of 1) futures unfinished", m2)
      assert.same({ 0, 1 }, { nd, nn })
      assert.is_true(slow:result(LONG))
    end)

    it("is cancelled at its suspension point, which pcall and <close> see", function()
      local g <close> = gate()
      local slow = ex:submit(await_gate, g.path)
      local seen = {}
      local f = futures.spawn(function()
        local guard <close> = setmetatable({}, { __close = function(_, e) seen.closed = e end })
        local ok, e = pcall(slow.result, slow)
        seen.caught = not ok and futures.CancelledError:is(e)
        error(e)
      end)
      assert.is_true(f:cancel())
      assert.is_true(f:cancelled())
      assert.is_true(seen.caught)
      assert.is_true(futures.CancelledError:is(seen.closed))
      raises(futures.CancelledError, f.result, f)
      g.open()
      assert.is_true(slow:result(LONG))
    end)
  end)
end

describe("futures.spawn", function()
  it("needs a callable", function()
    helpers.arg_error({ "#1", "callable" }, futures.spawn, 42)
  end)

  it("fails its future with the coroutine's error and traceback", function()
    local f = futures.spawn(function() local t = nil; return t.x end)
    local e = f:exception()
    assert.matches("attempt to index a nil value", e)
    assert.matches("coroutine_spec%.lua", f:traceback())
    local _, raised = pcall(f.result, f)
    assert.equal(e .. "\ncoroutine traceback:\n", raised:sub(1, #e + 22))
  end)

  it("explains a coroutine that yields on its own instead of hanging", function()
    local f = futures.spawn(function() coroutine.yield(1) end)
    assert.is_true(f:done())
    helpers.contains(f:exception(), "futures.spawn: the coroutine yielded on its own (coroutine.yield)")
  end)

  it("blocks in a coroutine the library did not spawn, as before", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local co = coroutine.wrap(function() return ex:submit(function() return "blocked" end):result(LONG) end)
    assert.equal("blocked", co())
  end)

  it("also blocks in such a coroutine inside a spawned one, which goes on", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local later = futures.Future()
    local f = futures.spawn(function()
      local co = coroutine.wrap(function() return ex:submit(function() return "blocked" end):result(LONG) end)
      local inner = co()   -- blocked the thread: it did not suspend the spawned one
      return inner, later:result()
    end)
    assert.is_false(f:done())   -- then suspended at its own wait
    later:set_result("its own")
    assert.same({ "blocked", "its own" }, { f:result(LONG) })
  end)

  it("suspends nested spawns each at its own waits", function()
    local x, y = futures.Future(), futures.Future()
    local steps, inner = {}, nil
    local outer = futures.spawn(function()
      inner = futures.spawn(function()
        steps[#steps + 1] = "inner waits"
        return x:result() * 10
      end)
      steps[#steps + 1] = "outer waits"   -- back in its own code after the inner one suspended
      return y:result() + inner:result()
    end)
    assert.same({ "inner waits", "outer waits" }, steps)
    y:set_result(1)   -- resumes the outer one, which then suspends on the inner one
    assert.is_false(outer:done())
    x:set_result(2)
    assert.is_true(inner:done())
    assert.same({ 21 }, { outer:result(LONG) })
  end)

  it("gets a clear error in a finalizer that runs after the library's own", function()
    local out, ok = helpers.run_lua([[
      local g = setmetatable({}, { __gc = function()
        print("in the finalizer:", pcall(FUT.spawn, function() end))
      end })
      FUT = require "futures"
    ]])
    assert.is_true(ok, out)
    helpers.contains(out, "in the finalizer:\tfalse\tfutures: the Lua state is closing")
  end)

  it("counts resumptions in poll()", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local g <close> = gate()
    local slow = ex:submit(await_gate, g.path)
    local fs = {}
    for i = 1, 3 do fs[i] = futures.spawn(function() return slow:result() end) end
    slow:add_done_callback(function() end)
    g.open()
    helpers.wait_until(function() return slow:done() end)
    assert.equal(4, futures.poll())   -- one callback, three resumptions
    for i = 1, 3 do assert.is_true(fs[i]:done()) end
  end)

  it("costs a suspension per coroutine, whatever their number", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local fs = {}
    for i = 1, 2000 do
      fs[i] = futures.spawn(function() return ex:submit(function(x) return x + 1 end, i):result() end)
    end
    local sum = 0
    for i = 1, 2000 do sum = sum + fs[i]:result(LONG) end
    assert.equal(2000 * 2001 / 2 + 2000, sum)
  end)
end)

describe("futures.run", function()
  it("returns fn's values and raises its error", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    assert.same({ 3, "x" }, { futures.run(function(a) return ex:submit(function(v) return v + 1 end, a):result(), "x" end, 2) })
    local e = helpers.error_of(futures.run, function() error({ code = 1 }) end)
    assert.equal(1, e.code)
  end)

  it("drives the other coroutines and timers while it waits", function()
    local order = {}
    local other = futures.spawn(function() futures.sleep(0.02); order[#order + 1] = "other" end)
    futures.run(function() futures.sleep(0.05); order[#order + 1] = "run" end)
    assert.is_true(other:done())
    assert.same({ "other", "run" }, order)
  end)

  it("inside a spawned coroutine suspends like any wait", function()
    local f = futures.spawn(function() return futures.run(function() futures.sleep(0.01); return "inner" end) end)
    assert.equal("inner", f:result(LONG))
  end)

  it("refuses to wait inside a done-callback", function()
    local f = futures.Future()
    local err
    f:add_done_callback(function() err = helpers.error_of(futures.run, function() end) end)
    f:set_result(1)
    helpers.contains(err, "futures.run cannot wait inside a done-callback")
  end)
end)

describe("futures.fd and futures.timeout", function()
  it("tell a foreign loop when poll() has work and when the next deadline is", function()
    assert.is_nil(futures.timeout())
    local fd = futures.fd()
    assert.equal(fd, futures.fd())   -- one per state
    local f = futures.spawn(function() futures.sleep(0.2) end)
    local t = futures.timeout()
    assert.is_true(t > 0.1 and t <= 0.2, tostring(t))
    f:cancel()
    assert.is_nil(futures.timeout())
  end)

  it("is readable exactly while poll() has work", function()
    local has_luv, uv = pcall(require, "luv")
    if not has_luv then pending("lua-luv is not installed") return end
    local ex <close> = futures.ThreadPoolExecutor(1)
    local g <close> = gate()
    local readable = 0
    local poller = uv.new_poll(futures.fd())
    local function readable_now()
      readable = 0
      poller:start("r", function() readable = readable + 1; poller:stop() end)
      uv.run("nowait")
      poller:stop()
      return readable > 0
    end
    local f = futures.spawn(function() return ex:submit(await_gate, g.path):result() end)
    assert.is_false(readable_now())
    g.open()
    helpers.wait_until(function() return readable_now() end)
    assert.equal(1, futures.poll())
    assert.is_false(readable_now())
    assert.is_true(f:done())
    poller:close()
    uv.run("nowait")
  end)
end)
