-- Stopping running calls: f:cancel(true) and the executor option
-- call_timeout, on both pools.  A call says it started by making a file
-- next to its gate's path, so every check waits on events; calls stuck
-- in C wait on a gate too, in a shell loop.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local gate = helpers.gate

-- Waits until the call given path p has started in its worker.
local function wait_started(p)
  helpers.wait_until(function()
    local fh = io.open(p .. ".in")
    if fh then fh:close() end
    return fh ~= nil
  end, LONG, "the call to start in its worker")
  os.remove(p .. ".in")
end

local function started(p) io.open(p .. ".in", "w"):close() end

local function busy(p)
  io.open(p .. ".in", "w"):close()
  while true do end
end

local function swallowing(p)
  io.open(p .. ".in", "w"):close()
  local n = 0
  while true do
    pcall(function() while true do n = n + 1 end end)
    pcall(error, "again")
  end
end

local function sleeping(p)
  io.open(p .. ".in", "w"):close()
  require("futures").sleep(1e6)
end

-- Waits on a future nobody completes: the wait must end with the stop.
local function waiting(p)
  local fut = require "futures"
  io.open(p .. ".in", "w"):close()
  local f = fut.Future()
  local ok, e = pcall(f.result, f)
  fut.wait({ fut.Future() })   -- raises again, if the first was swallowed
  return ok, e
end

-- Stuck in C (a shell) until the gate opens; the shell also ends once
-- the worker that ran it is gone (killed), and holds none of our output.
local function in_c(p, gatepath)
  io.open(p .. ".in", "w"):close()
  os.execute(("exec >/dev/null 2>&1; while [ ! -e '%s' ] && kill -0 $PPID; do sleep 0.02; done")
    :format(gatepath))
  while true do end   -- stopped here, once C returns
end

local function tiny(i) return i end

local function whoami() return require("futures").getpid(), INIT end

local function set_init() INIT = "kept" end

local pools = {
  threads = function(opts) return futures.ThreadPoolExecutor(opts) end,
  processes = function(opts) return futures.ProcessPoolExecutor(opts) end,
}

-- Cancels f (running) with interrupt: done at once, cancelled, callbacks
-- run once, result raises CancelledError.
local function stop_now(f)
  local calls = 0
  f:add_done_callback(function() calls = calls + 1 end)
  assert.is_false(f:done())
  assert.is_true(f:cancel(true))
  assert.is_true(f:done())
  assert.is_true(f:cancelled())
  assert.equal(1, calls)
  helpers.raises(futures.CancelledError, f.result, f, 0)
  return function() return calls end
end

for kind, new in pairs(pools) do
  describe(kind .. " cancel(true)", function()
    local tmp
    before_each(function() tmp = os.tmpname() end)
    after_each(function() os.remove(tmp); os.remove(tmp .. ".in") end)

    local function stops(fn, what)
      it("stops " .. what .. "; the worker is free and its state kept", function()
        local ex <close> = new { max_workers = 1, initializer = set_init }
        assert.equal("kept", select(2, ex:submit(whoami):result(LONG)))
        local f = ex:submit(fn, tmp)
        wait_started(tmp)
        local calls = stop_now(f)
        local pid, init = ex:submit(whoami):result(LONG)
        assert.equal("kept", init)
        assert.equal(1, calls())
        if kind == "processes" then assert.same({ pid }, ex:_pids()) end
      end)
    end
    stops(busy, "a busy loop")
    stops(swallowing, "a loop that swallows errors with pcall")
    stops(sleeping, "a futures.sleep")
    stops(waiting, "waits inside the call")

    it("cancel() without interrupt leaves a running call alone", function()
      local g <close> = gate()
      local ex <close> = new { max_workers = 1 }
      local f = ex:submit(function(p, gp)
        io.open(p .. ".in", "w"):close()
        return require("helpers").await_gate(gp) and "ran"
      end, tmp, g.path)
      wait_started(tmp)
      assert.is_false(f:cancel())
      assert.is_false(f:cancel(false))
      g.open()
      assert.equal("ran", f:result(LONG))
      assert.is_false(f:cancel(true))   -- done: nothing to stop
    end)

    it("a pending call is cancelled as by cancel()", function()
      local ex <close> = new { max_workers = 1 }
      local f = ex:submit(busy, tmp)
      wait_started(tmp)
      local later = ex:submit(tiny, 5)
      assert.is_true(later:cancel(true))
      assert.is_true(later:cancelled())
      stop_now(f)
      assert.equal(6, ex:submit(tiny, 6):result(LONG))
    end)

    it("twice: the second cancel(true) changes nothing", function()
      local ex <close> = new { max_workers = 1 }
      local f = ex:submit(busy, tmp)
      wait_started(tmp)
      local calls = stop_now(f)
      assert.is_true(f:cancel(true))
      assert.is_true(f:cancel())
      assert.equal(1, calls())
      assert.equal(7, ex:submit(tiny, 7):result(LONG))
    end)

    it("stops as calls finish: each future completes once, with its own result", function()
      local ex <close> = new { max_workers = 2 }
      local fs, calls = {}, {}
      for i = 1, 300 do
        local f = ex:submit(tiny, i)
        fs[i] = f
        calls[i] = 0
        f:add_done_callback(function() calls[i] = calls[i] + 1 end)
        if i % 3 ~= 0 then f:cancel(true) end
      end
      for i, f in ipairs(fs) do
        futures.wait({ f }, LONG)
        assert.is_true(f:done())
        if f:cancelled() then
          helpers.raises(futures.CancelledError, f.result, f, 0)
        else
          assert.equal(i, f:result(0))
        end
      end
      futures.poll()
      for i = 1, #fs do assert.equal(1, calls[i], "callbacks of call " .. i) end
      for i = 1, 50 do assert.equal(i, ex:submit(tiny, i):result(LONG)) end
    end)

    it("during shutdown(true)", function()
      local ex = new { max_workers = 1 }
      local f = ex:submit(busy, tmp)
      local queued = ex:submit(tiny, 3)
      wait_started(tmp)
      ex:shutdown(false)
      stop_now(f)
      ex:shutdown(true)
      assert.equal(3, queued:result(0))
    end)

    it("shutdown with cancel_futures while a call is stopped", function()
      local ex = new { max_workers = 1 }
      local f = ex:submit(busy, tmp)
      local queued = ex:submit(tiny, 3)
      wait_started(tmp)
      stop_now(f)
      ex:shutdown(true, true)
      -- the freed worker may have taken it first
      assert.is_true(queued:cancelled() or queued:result(0) == 3)
    end)

    it("of the future a spawned coroutine waits on", function()
      local ex <close> = new { max_workers = 1 }
      local f = ex:submit(busy, tmp)
      local waiter = futures.spawn(function() return pcall(f.result, f) end)
      wait_started(tmp)
      assert.is_true(f:cancel(true))
      local ok, e = waiter:result(LONG)
      assert.is_false(ok)
      assert.is_true(futures.CancelledError:is(e), tostring(e))
      assert.equal(8, ex:submit(tiny, 8):result(LONG))
    end)

    it("a stop from a spawned coroutine", function()
      local ex <close> = new { max_workers = 1 }
      local f = ex:submit(sleeping, tmp)
      local r = futures.run(function()
        helpers.wait_until(function()
          local fh = io.open(tmp .. ".in")
          if fh then fh:close() end
          return fh ~= nil
        end)
        return f:cancel(true)
      end)
      assert.is_true(r)
      assert.is_true(f:cancelled())
      assert.equal(9, ex:submit(tiny, 9):result(LONG))
    end)

    it("call_timeout: a call that runs too long fails with TimeoutError", function()
      local ex <close> = new { max_workers = 1, call_timeout = 0.2 }
      local f = ex:submit(busy, tmp)
      local calls = 0
      f:add_done_callback(function() calls = calls + 1 end)
      local e = helpers.raises(futures.TimeoutError, f.result, f, LONG)
      assert.is_false(f:cancelled())
      assert.is_true(futures.TimeoutError:is(f:exception()))
      helpers.contains(tostring(e), "call_timeout")
      assert.equal(1, calls)
      -- the worker is free, later short calls are not timed out
      for i = 1, 20 do assert.equal(i, ex:submit(tiny, i):result(LONG)) end
      local s = ex:submit(sleeping, tmp)
      helpers.raises(futures.TimeoutError, s.result, s, LONG)
      assert.equal(10, ex:submit(tiny, 10):result(LONG))
    end)

    it("call_timeout and a stop of the same call", function()
      local ex <close> = new { max_workers = 1, call_timeout = 0.3 }
      local f = ex:submit(busy, tmp)
      wait_started(tmp)
      -- Whichever comes first ends the call (the stop, unless the machine
      -- is slow enough, valgrind say, for the deadline to pass first), and
      -- the other changes nothing.
      local stopped = f:cancel(true)
      assert.equal(stopped, f:cancelled())
      if not stopped then assert.is_true(futures.TimeoutError:is(f:exception())) end
      futures.sleep(0.4)   -- past the deadline: nothing more happens to it
      assert.equal(stopped, f:cancelled())
      assert.is_true(f:done())
      assert.equal(11, ex:submit(tiny, 11):result(LONG))
    end)

    it("options are checked", function()
      local name = kind == "threads" and "ThreadPoolExecutor" or "ProcessPoolExecutor"
      helpers.arg_error({ name, "call_timeout must be a positive number of seconds, got 0" },
        new, { call_timeout = 0 })
      helpers.arg_error({ "call_timeout", 'string "1"' }, new, { call_timeout = "1" })
      helpers.arg_error({ "call_timeout", "NaN" }, new, { call_timeout = 0 / 0 })
      if kind == "processes" then
        helpers.arg_error({ "stop_grace must be a non-negative number of seconds, got -1" },
          new, { stop_grace = -1 })
      else
        helpers.arg_error("unknown option 'stop_grace'", new, { stop_grace = 1 })
      end
    end)
  end)
end

describe("a q:get inside a stopped call", function()
  local function getter(p, q)
    io.open(p .. ".in", "w"):close()
    return q:get()
  end

  it("ends with the stop on threads; the worker is free", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local tmp, q = os.tmpname(), futures.Queue()
    local f = ex:submit(getter, tmp, q)
    wait_started(tmp)
    stop_now(f)
    assert.equal(7, ex:submit(tiny, 7):result(LONG))
    q:put(1)
    assert.equal(1, #q)   -- the stopped get took nothing
    os.remove(tmp)
  end)

  it("on processes: the worker, waiting on its pipe, is replaced after stop_grace", function()
    local ex <close> = futures.ProcessPoolExecutor{ max_workers = 1, stop_grace = 0.1 }
    local tmp, q = os.tmpname(), futures.Queue()
    local pid = ex:submit(whoami):result(LONG)
    local f = ex:submit(getter, tmp, q)
    wait_started(tmp)
    stop_now(f)
    assert.equal(7, ex:submit(tiny, 7):result(LONG))
    assert.are_not.same({ pid }, ex:_pids())
    q:put(1)
    assert.equal(1, #q)   -- the killed worker's get took nothing
    os.remove(tmp)
  end)
end)

describe("threads: a call stuck in C", function()
  it("frees its worker when the C code returns", function()
    local tmp = os.tmpname()
    local g <close> = gate()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local f = ex:submit(in_c, tmp, g.path)
    wait_started(tmp)
    stop_now(f)
    local next_call = ex:submit(tiny, 12)
    assert.is_false(next_call:done())
    g.open()
    assert.equal(12, next_call:result(LONG))
    os.remove(tmp)
  end)
end)

describe("processes: a call stuck in C", function()
  local tmp
  before_each(function() tmp = os.tmpname() end)
  after_each(function() os.remove(tmp); os.remove(tmp .. ".in") end)

  it("is killed after stop_grace and replaced; calls behind it run", function()
    local g <close> = gate()
    local px <close> = futures.ProcessPoolExecutor { max_workers = 1, stop_grace = 0.2 }
    -- timed tiny calls first, so calls may be sent ahead behind the stuck one
    for i = 1, 200 do assert.equal(i, px:submit(tiny, i):result(LONG)) end
    local pid = px:submit(whoami):result(LONG)
    local f = px:submit(in_c, tmp, g.path)
    local behind = {}
    for i = 1, 50 do behind[i] = px:submit(tiny, i) end
    wait_started(tmp)
    stop_now(f)
    for i = 1, 50 do assert.equal(i, behind[i]:result(LONG)) end
    local pid2 = px:submit(whoami):result(LONG)
    assert.not_equal(pid, pid2)
    assert.same({ pid2 }, px:_pids())
    g.open()   -- the orphaned shell loop ends
    assert.equal(13, px:submit(tiny, 13):result(LONG))
  end)

  it("call_timeout on a call in C: TimeoutError, then the worker is replaced", function()
    local g <close> = gate()
    local px <close> = futures.ProcessPoolExecutor { max_workers = 2, call_timeout = 0.2, stop_grace = 0.1 }
    local f = px:submit(in_c, tmp, g.path)
    helpers.raises(futures.TimeoutError, f.result, f, LONG)
    for i = 1, 20 do assert.equal(i, px:submit(tiny, i):result(LONG)) end
    g.open()
  end)

  it("with max_tasks_per_child: the stopped call is the worker's last", function()
    local px <close> = futures.ProcessPoolExecutor { max_workers = 1, max_tasks_per_child = 1 }
    local pid = px:submit(whoami):result(LONG)
    local f = px:submit(busy, tmp)
    local after = px:submit(whoami)
    wait_started(tmp)
    stop_now(f)
    local pid3 = after:result(LONG)
    assert.not_equal(pid, pid3)
    assert.equal(14, px:submit(tiny, 14):result(LONG))
  end)

  it("a stop sent to a worker that is still starting does not kill it", function()
    for _ = 1, 5 do
      local px <close> = futures.ProcessPoolExecutor { max_workers = 1 }
      local f = px:submit(busy, tmp)
      f:cancel(true)   -- pending or just sent
      assert.is_true(f:cancelled())
      assert.equal(15, px:submit(tiny, 15):result(LONG))
    end
  end)
end)

describe("#slow stop stress", function()
  for kind, new in pairs(pools) do
    it(kind .. ": random stops over mixed calls", function()
      local seed = tonumber(os.getenv("FUTURES_SEED") or "") or os.time()
      math.randomseed(seed)
      local ex <close> = new { max_workers = 2, stop_grace = kind == "processes" and 0.5 or nil }
      local function mixed(i, what)
        if what == 1 then return i end
        if what == 2 then local t = require("futures").monotonic() + 0.002
          while require("futures").monotonic() < t do end
          return i
        end
        if what == 3 then require("futures").sleep(0.003); return i end
        if what == 4 then pcall(function() for _ = 1, 2e5 do end end); return i end
        return i
      end
      local fs, kinds, calls = {}, {}, {}
      for i = 1, 400 do
        local what = math.random(1, 4)
        local f = ex:submit(mixed, i, what)
        fs[i], kinds[i], calls[i] = f, what, 0
        f:add_done_callback(function() calls[i] = calls[i] + 1 end)
        local r = math.random()
        if r < 0.3 then f:cancel(true) end
        if r < 0.05 then f:cancel(true) end
        if i % 50 == 0 then futures.sleep(0.002) end
      end
      local _, not_done = futures.wait(fs, 60)
      assert.equal(0, #not_done, "seed " .. seed)
      futures.poll()
      for i, f in ipairs(fs) do
        assert.equal(1, calls[i], "seed " .. seed)
        if not f:cancelled() then assert.equal(i, f:result(0), "seed " .. seed) end
      end
      for i = 1, 50 do assert.equal(i, ex:submit(tiny, i):result(LONG)) end
    end)
  end
end)
