-- What both executors do alike (docs/reference.md "Executors"), one spec
-- run over each pool: construction, argument errors, copied arguments,
-- and the forms of shutdown.  What differs lives in thread_pool_spec and
-- process_pool_spec.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local gate = helpers.gate
local raises, arg_error, stats = helpers.raises, helpers.arg_error, helpers.stats

local POOLS = {
  ThreadPoolExecutor = futures.ThreadPoolExecutor,
  ProcessPoolExecutor = futures.ProcessPoolExecutor,
}

-- What a shut-down executor leaves: no worker; for processes, no process.
local function gone(ex)
  assert.equal(0, stats(ex).workers)
  if ex._pids then assert.same({}, ex:_pids()) end
end

for kind, new in pairs(POOLS) do
  describe(kind, function()
    it("takes a number or an options table", function()
      local a <close> = new(3)
      assert.matches("^<" .. kind .. " max_workers=3 workers=0 pending=0>$", tostring(a))
      local b <close> = new{ max_workers = 2 }
      assert.matches("max_workers=2 ", tostring(b))
      local c <close> = new(2.0)   -- an integral float is fine
      assert.matches("max_workers=2 ", tostring(c))
    end)

    it("fails with a TransferError for initargs that cannot cross", function()
      raises(futures.TransferError, new, { max_workers = 1, initializer = function() end, initargs = { io.stdout } })
    end)

    it("rejects what cannot be called", function()
      local ex <close> = new(1)
      arg_error({ "#1", "submit", "callable" }, function() ex:submit() end)
      arg_error({ "#1", "submit" }, function() ex:submit(42) end)
      arg_error({ "#1", "submit" }, function() ex:submit({}) end)
      arg_error({ "#1", "submit" }, function() ex:submit("print") end)
    end)

    it("copies arguments: a worker's change is not seen", function()
      local ex <close> = new(1)
      local t = { n = 1 }
      assert.equal(2, ex:submit(function(x) x.n = 2; return x.n end, t):result(LONG))
      assert.equal(1, t.n)
    end)

    describe("shutdown", function()
      it("of an executor that never started a worker is immediate", function()
        local ex = new(3)
        ex:shutdown()
        assert.same({ workers = 0, idle = 0, pending = 0, started = 0 }, stats(ex))
      end)

      it("with wait false returns at once; the work still runs", function()
        local ex = new(1)
        local g <close> = gate()
        local running = ex:submit(helpers.await_gate, g.path)
        local pending = ex:submit(function() return "later" end)
        helpers.wait_running(running)
        ex:shutdown(false)
        assert.is_false(running:done())
        raises(futures.ShutdownError, ex.submit, ex, print)
        g.open()
        assert.is_true(running:result(LONG))
        assert.equal("later", pending:result(LONG))
        ex:shutdown(true)
        gone(ex)
      end)

      it("with cancel_futures cancels the pending calls, not the running one", function()
        local ex = new(1)
        local g <close> = gate()
        local running = ex:submit(function(path) require("helpers").await_gate(path); return "ran" end, g.path)
        helpers.wait_running(running)
        local fs, cancelled_cb = {}, 0
        for i = 1, 10 do
          fs[i] = ex:submit(function() return i end)
          -- the running call ends only once shutdown has cancelled the rest
          fs[i]:add_done_callback(function(f)
            if f:cancelled() then cancelled_cb = cancelled_cb + 1; g.open() end
          end)
        end
        ex:shutdown(true, true)
        assert.equal("ran", running:result(0))
        local cancelled = 0
        for i = 1, 10 do
          assert.is_true(fs[i]:done())
          if fs[i]:cancelled() then
            cancelled = cancelled + 1
            raises(futures.CancelledError, fs[i].result, fs[i], 0)
          else
            assert.equal(i, fs[i]:result(0))   -- a process pool's call sent ahead counts as running
          end
        end
        assert.equal(cancelled, cancelled_cb)
        if kind == "ThreadPoolExecutor" then assert.equal(10, cancelled) end
        assert.is_true(cancelled >= 7, cancelled .. " cancelled")
        gone(ex)
      end)
    end)
  end)
end
