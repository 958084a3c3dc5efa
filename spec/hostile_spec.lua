-- Hostile and unusual use: finalizers at state close, callbacks that block,
-- error values that cannot be printed, a user's own debug hook, sleeps
-- that are too long to count, and the hints a first pool needs.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local gate, await_gate = helpers.gate, helpers.await_gate

local POOLS = {
  threads = function() return futures.ThreadPoolExecutor(2) end,
  processes = function() return futures.ProcessPoolExecutor(2) end,
}

describe("a finalizer that runs after the library's own at state close", function()
  -- Finalizers run in the reverse order of their objects: one made before
  -- `require "futures"` runs after the module's.
  local function run(body)
    return helpers.run_lua(([[
      local g = setmetatable({}, { __gc = function()
        local ok, e = pcall(function() %s end)
        print("in the finalizer:", ok, e)
      end })
      FUT = require "futures"
      print("survived")
    ]]):format(body))
  end

  it("gets a clear error from an executor constructor, not a crash", function()
    local out, ok = run("FUT.ThreadPoolExecutor(1)")
    assert.is_true(ok, out)
    helpers.contains(out, "survived")
    helpers.contains(out, "in the finalizer:\tfalse\tfutures: the Lua state is closing")
  end)

  it("gets the same error from add_done_callback and wait", function()
    local out, ok = run("FUT.Future():add_done_callback(print)")
    assert.is_true(ok, out)
    helpers.contains(out, "futures: the Lua state is closing")
    out, ok = run("FUT.wait({ FUT.Future() }, 0)")
    assert.is_true(ok, out)
    helpers.contains(out, "futures: the Lua state is closing")
  end)

  it("does not kill (or leak in) the host when a thread worker's state closes", function()
    local out, ok = helpers.run_lua([[
      local futures = require "futures"
      local ex = futures.ThreadPoolExecutor(1)
      assert(ex:submit(function()
        G = setmetatable({}, { __gc = function() FUT.ThreadPoolExecutor(1) end })
        FUT = require "futures"
        return true
      end):result(60))
      ex:shutdown(true)
      print("survived")
    ]])
    assert.is_true(ok, out)
    helpers.contains(out, "survived")
  end)
end)

describe("done-callbacks", function()
  local ex
  before_each(function() ex = futures.ThreadPoolExecutor(2) end)
  after_each(function() ex:shutdown(true) end)

  -- Each future's callbacks were added before it completed, so they are
  -- queued, and run from the next blocking call or poll().
  local function queued(n, callback)
    local g <close> = gate()
    local fs = {}
    for i = 1, n do
      fs[i] = ex:submit(function(path, k) await_gate(path); return k end, g.path, i)
      fs[i]:add_done_callback(callback)
    end
    g.open()
    helpers.wait_until(function()
      for _, f in ipairs(fs) do if not f:done() then return false end end
      return true
    end)
    return fs
  end

  it("never run inside another one, each once, in order", function()
    local results, depth, deepest = {}, 0, 0
    queued(8, function(f)
      depth = depth + 1
      deepest = math.max(deepest, depth)
      results[#results + 1] = f:result()   -- the index is taken before the call
      depth = depth - 1
    end)
    assert.equal(8, futures.poll())
    assert.equal(1, deepest)
    table.sort(results)   -- (futures complete in any order)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, results)
  end)

  it("leave the others queued while one of them blocks", function()
    local g <close> = gate()
    local slow = ex:submit(await_gate, g.path)
    local order, depth, deepest = {}, 0, 0
    queued(4, function(f)
      depth = depth + 1
      deepest = math.max(deepest, depth)
      if f:result() == 1 then g.open(); assert(slow:result(LONG)) end  -- blocks
      order[#order + 1] = f:result()
      depth = depth - 1
    end)
    assert.equal(4, futures.poll())
    assert.equal(1, deepest)
    table.sort(order)
    assert.same({ 1, 2, 3, 4 }, order)
  end)

  it("run by the hundred without a C stack overflow, all counted", function()
    local ran = 0
    queued(300, function(f) ran = ran + 1; f:result() end)
    assert.equal(300, futures.poll())
    assert.equal(300, ran)
  end)

  it("of other futures are not run by result() on a future that is done already", function()
    local f = ex:submit(function() return 1 end)
    assert.equal(1, f:result(LONG))
    local ran = 0
    queued(3, function() ran = ran + 1 end)
    assert.equal(1, f:result())
    assert.equal(0, ran)
    assert.equal(3, futures.poll())
  end)

  it("of the future itself have run when result() returns, done already or not", function()
    local ran, others = {}, 0
    local fs = queued(3, function(f) ran[#ran + 1] = f:result() end)
    queued(2, function() others = others + 1 end)
    assert.equal(2, fs[2]:result())   -- done already: its own callback runs, no other
    assert.same({ 2 }, ran)
    assert.equal(0, others)
    assert.equal(4, futures.poll())   -- the rest; fs[2]'s job finds nothing left
    table.sort(ran)
    assert.same({ 1, 2, 3 }, ran)
    assert.equal(2, others)
  end)
end)

for kind, make in pairs(POOLS) do
  describe("a task's error value on " .. kind, function()
    local ex
    setup(function() ex = make() end)
    teardown(function() ex:shutdown(true) end)

    it("survives a __tostring that raises", function()
      local f = ex:submit(function()
        error(setmetatable({ code = 42 }, { __tostring = function() error("x") end }))
      end)
      local e = f:exception(LONG)
      assert.equal("table", type(e))
      assert.equal(42, e.code)
      helpers.contains(f:traceback(), "(error object is a table value)")
      local ok, e2 = pcall(f.result, f)
      assert.is_false(ok)
      assert.equal(42, e2.code)   -- not a string: re-raised as it is
    end)

    it("comes back from result() with the worker's traceback after a string", function()
      local f = ex:submit(function(rows)
        local function parse_row(r) return r.x + 1 end
        local v = parse_row(rows[1])
        return v
      end, { {} })
      local msg = f:exception(LONG)
      assert.matches("^spec/hostile_spec%.lua:%d+: attempt to perform arithmetic on a nil value %(field 'x'%)$", msg)
      local ok, e = pcall(f.result, f)
      assert.is_false(ok)
      assert.equal(msg .. "\nworker traceback:\n", e:sub(1, #msg + 19))
      helpers.contains(e, "'parse_row'")
      assert.equal(msg, f:exception())   -- untouched
    end)

    it("says so when it names a global that only the caller has", function()
      rawset(_G, "scale_for_hint", function(x) return 2 * x end)
      local f = ex:submit(function(x) return scale_for_hint(x) end, 4)
      local e = f:exception(LONG)
      rawset(_G, "scale_for_hint", nil)
      helpers.contains(e, "attempt to call a nil value (global 'scale_for_hint') (the caller has a "
        .. "global 'scale_for_hint', but a worker has globals of its own: pass it as an argument, "
        .. "capture it in a local, or set it in an initializer)")
      -- a global the caller does not have either: no hint
      local e2 = ex:submit(function() return no_such_global_anywhere() end):exception(LONG)
      assert.is_nil(e2:find("the caller has", 1, true), e2)
    end)
  end)
end

describe("a user's own debug hook", function()
  local ex
  setup(function() ex = futures.ThreadPoolExecutor(2) end)
  teardown(function() ex:shutdown(true) end)

  it("is neither taken for Ctrl-C by a wait in a coroutine nor removed", function()
    local f = ex:submit(function() return "done" end)
    local hook = function() end
    debug.sethook(hook, "crl", 1)   -- lua.c's shape: a profiler's or coverage tool's
    local ok, r = pcall(coroutine.wrap(function() return f:result(LONG) end))
    local still = debug.gethook()
    debug.sethook()
    assert.is_true(ok, tostring(r))
    assert.equal("done", r)
    assert.equal(hook, still)
  end)

  it("set by a done-callback does not interrupt the wait running it", function()
    local g <close> = gate()
    local slow = ex:submit(await_gate, g.path)
    local quick = ex:submit(function() return 1 end)
    local hook = function() end
    quick:add_done_callback(function()
      debug.sethook(hook, "l")
      g.open()
    end)
    local ok, r = pcall(slow.result, slow, LONG)
    local still = debug.gethook()
    debug.sethook()
    assert.is_true(ok, tostring(r))
    assert.is_true(r)
    assert.equal(hook, still)
  end)
end)

describe("futures.sleep", function()
  it("sleeps for a time too long to count instead of returning at once", function()
    for _, s in ipairs({ "math.huge", "1e300", "2^63" }) do
      local out = helpers.sh(("%s timeout -s KILL 0.5 %s -e %s 2>&1; echo status $?"):format(
        helpers.child_env(), helpers.LUA,
        helpers.shell_quote(("require('futures').sleep(%s); print('returned')"):format(s))))
      assert.is_nil(out:find("returned", 1, true), s .. ": " .. out)
      helpers.contains(out, "status 137")
    end
  end)

  it("rejects NaN and returns at once for 0 and negative times", function()
    helpers.arg_error("not a number", futures.sleep, 0 / 0)
    local t = futures.monotonic()
    futures.sleep(0)
    futures.sleep(-5)
    assert.is_true(futures.monotonic() - t < 1)
  end)
end)
