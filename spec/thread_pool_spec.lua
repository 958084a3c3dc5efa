-- ThreadPoolExecutor (docs/reference.md "Executors"): construction and its argument
-- errors, lazy workers, initializers, names, shutdown, <close>, garbage
-- collection, values that cannot cross, and map.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local core = require "futures.core"
local gate, await_gate = helpers.gate, helpers.await_gate
local raises, arg_error = helpers.raises, helpers.arg_error

local stats = helpers.stats

describe("ThreadPoolExecutor", function()

  describe("construction", function()
    it("defaults max_workers to min(32, cpu_count() + 4)", function()
      local want = math.min(32, futures.cpu_count() + 4)
      local a <close> = futures.ThreadPoolExecutor()
      assert.matches("max_workers=" .. want .. " ", tostring(a))
      local b <close> = futures.ThreadPoolExecutor{}
      assert.matches("max_workers=" .. want .. " ", tostring(b))
      local c <close> = futures.ThreadPoolExecutor{ thread_name_prefix = "p" }
      assert.matches("max_workers=" .. want .. " ", tostring(c))
    end)

    it("rejects a max_workers that is not a positive integer", function()
      for _, bad in ipairs({ 0, -1, "x", 2.5, 0 / 0, math.huge, true }) do
        arg_error("max_workers", futures.ThreadPoolExecutor, bad)
        arg_error("max_workers", futures.ThreadPoolExecutor, { max_workers = bad })
      end
      arg_error("max_workers", futures.ThreadPoolExecutor, "4")
    end)

    it("rejects unknown options and bad option types", function()
      arg_error("max_worker", futures.ThreadPoolExecutor, { max_worker = 2 })
      arg_error("max_tasks_per_child", futures.ThreadPoolExecutor, { max_tasks_per_child = 2 })
      arg_error("initializer", futures.ThreadPoolExecutor, { initializer = 42 })
      arg_error("initargs", futures.ThreadPoolExecutor, { initializer = print, initargs = 1 })
      arg_error("thread_name_prefix", futures.ThreadPoolExecutor, { thread_name_prefix = 7 })
    end)

    it("has a string form with kind and state", function()
      local ex = futures.ThreadPoolExecutor(2)
      local g <close> = gate()
      local f = ex:submit(await_gate, g.path)
      helpers.wait_running(f)
      assert.equal("<ThreadPoolExecutor max_workers=2 workers=1 pending=0>", tostring(ex))
      g.open()
      ex:shutdown()
      assert.equal("<ThreadPoolExecutor max_workers=2 workers=0 pending=0 shutdown>", tostring(ex))
    end)

    it("counts as pending only the queued calls not cancelled", function()
      local ex = futures.ThreadPoolExecutor(1)
      local g <close> = gate()
      helpers.wait_running(ex:submit(await_gate, g.path))
      local a, b, c = ex:submit(math.abs, -1), ex:submit(math.abs, -2), ex:submit(math.abs, -3)
      assert.is_true(b:cancel())
      assert.equal("<ThreadPoolExecutor max_workers=1 workers=1 pending=2>", tostring(ex))
      g.open()
      assert.equal(1, a:result())
      assert.equal(3, c:result())
      ex:shutdown()
    end)
  end)

  describe("submit", function()
    local ex
    setup(function() ex = futures.ThreadPoolExecutor(4) end)
    teardown(function() ex:shutdown() end)

    -- Big arrays of numbers come back as one block the caller's table
    -- takes over (the worker pays the copy); the outcome is decoded once.
    describe("big arrays of numbers", function()
      local function floats(n, k) local t = {} for i = 1, n do t[i] = i * k + 0.5 end return t end
      for _, adopt in ipairs { true, false } do
        it("come back whole, one result or several (" .. (adopt and "adopted" or "copied") .. ")", function()
          local was = core._adopt_arrays()
          finally(function() core._adopt_arrays(was) end)
          core._adopt_arrays(adopt)
          local one = ex:submit(floats, 30000, 2)
          local two = ex:submit(function(n) return floats(n, 1), floats(n, 3), "tail" end, 20000)
          local t = one:result(LONG)
          assert.equal(t, one:result(LONG))
          assert.equal(30000, #t)
          assert.equal(60000.5, t[30000])
          local a, b, tail = two:result(LONG)
          assert.equal(20000.5, a[20000])
          assert.equal(60000.5, b[20000])
          assert.equal("tail", tail)
          local again = { two:result(LONG) }
          assert.equal(a, again[1])
          assert.equal(b, again[2])
          b[20001] = 1   -- grows like any table
          assert.equal(20001, #b)
        end)
      end

      it("are freed with a future nobody reads", function()
        helpers.unread_results_freed(ex, floats, 50000)
      end)

      it("keep the reason of a result that fails to decode after one", function()
        local f = ex:submit(function(n)
          package.preload.worker_only = function() return {} end
          return { big = floats(n, 1), mod = require "worker_only" }
        end, 10000)
        local ok, e = pcall(f.result, f, LONG)
        assert.is_false(ok)
        assert.is_true(futures.TransferError:is(e), tostring(e))
        assert.truthy(e.message:find("worker_only", 1, true), e.message)
        assert.equal(e, f:exception(LONG))
      end)

      it("reach a done-callback and an error object", function()
        local got = futures.Future()
        local f = ex:submit(floats, 10000, 1)
        f:add_done_callback(function(d) got:set_result(#d:result()) end)
        assert.equal(10000, got:result(LONG))
        local e = ex:submit(function(n) error(floats(n, 1)) end, 10000):exception(LONG)
        assert.equal(10000.5, e[10000])
      end)
    end)

    it("runs callable tables", function()
      local callable = setmetatable({ base = 10 }, { __call = function(self, x) return self.base + x end })
      assert.equal(15, ex:submit(callable, 5):result(LONG))
    end)

    it("runs C functions reachable by name", function()
      assert.equal(3.0, ex:submit(math.sqrt, 9):result(LONG))
      assert.equal("a-1", ex:submit(string.format, "%s-%d", "a", 1):result(LONG))
    end)

    it("passes arguments including nils", function()
      local f = ex:submit(function(...) return select("#", ...), ... end, nil, 2, nil)
      assert.same({ n = 4, 3, nil, 2, nil }, table.pack(f:result(LONG)))
    end)

    it("fails only that future with a TransferError for an argument that cannot cross", function()
      local f = ex:submit(function(a, b) return a end, 1, { conn = io.stdout })
      assert.is_true(f:done())
      local e = f:exception()
      assert.is_true(futures.TransferError:is(e))
      helpers.contains(e.message, "argument #2: conn is a userdata (FILE*)")
      raises(futures.TransferError, f.result, f)
      -- the executor goes on
      assert.equal(2, ex:submit(function(x) return x end, 2):result(LONG))
    end)

    it("fails only that future with a TransferError for a result that cannot cross", function()
      local bad = ex:submit(function() return 1, io.stdout end)
      local good = ex:submit(function() return "fine" end)
      local e = bad:exception(LONG)
      assert.is_true(futures.TransferError:is(e))
      helpers.contains(e.message, "result #2 is a userdata")
      assert.equal("fine", good:result(LONG))
      local co = ex:submit(function() return { co = coroutine.create(print) } end)
      helpers.contains(co:exception(LONG).message, "coroutine")
    end)

    it("gives every worker the creator's package.path and cpath", function()
      local saved = package.path
      package.path = "/nonexistent/?.lua;" .. saved
      local ok, err = pcall(function()
        local pex <close> = futures.ThreadPoolExecutor(1)
        local p, cp = pex:submit(function() return package.path, package.cpath end):result(LONG)
        assert.equal(package.path, p)
        assert.equal(package.cpath, cp)
      end)
      package.path = saved
      assert(ok, err)
      -- and so a task can require a module from the spec tree
      local h = ex:submit(function() return type(require("helpers").gate) end):result(LONG)
      assert.equal("function", h)
    end)

    it("lets a task submit to a pool of its own", function()
      local f = ex:submit(function(n)
        local inner <close> = futures.ThreadPoolExecutor(2)
        local fs = {}
        for i = 1, n do fs[i] = inner:submit(function(x) return x * x, futures.current_worker() end, i) end
        local sum = 0
        for _, g in ipairs(fs) do sum = sum + g:result() end
        return sum, select(2, fs[1]:result()), futures.current_worker()
      end, 4)
      local sum, inner_name, outer_name = f:result(LONG)
      assert.equal(30, sum)
      assert.matches("^ThreadPoolExecutor%-%d+_%d+$", inner_name)
      assert.matches("^ThreadPoolExecutor%-%d+_%d+$", outer_name)
      assert.are_not.equal(inner_name:match("%-(%d+)_"), outer_name:match("%-(%d+)_"))
    end)

    it("lets a task wait on futures of its own pool's tasks", function()
      local f = ex:submit(function()
        local inner <close> = futures.ThreadPoolExecutor(3)
        local fs = {}
        for i = 1, 20 do fs[i] = inner:submit(function(x) return x end, i) end
        local done = futures.wait(fs)
        local n = 0
        for g in futures.as_completed(fs) do n = n + g:result() end
        local m = 0
        for _, v in inner:map(function(x) return x * 2 end, { 1, 2, 3 }) do m = m + v end
        return #done, n, m
      end)
      assert.same({ n = 3, 20, 210, 12 }, table.pack(f:result(LONG)))
    end)
  end)

  describe("workers", function()
    it("start lazily, up to max_workers, and never more", function()
      local ex <close> = futures.ThreadPoolExecutor(3)
      assert.same({ workers = 0, idle = 0, pending = 0, started = 0 }, stats(ex))
      local g <close> = gate()
      local fs = {}
      fs[1] = ex:submit(await_gate, g.path)
      assert.equal(1, stats(ex).started)
      for i = 2, 10 do fs[i] = ex:submit(await_gate, g.path) end
      helpers.wait_until(function()
        local running = 0
        for _, f in ipairs(fs) do if f:running() then running = running + 1 end end
        return running == 3
      end)
      local s = stats(ex)
      assert.equal(3, s.workers)
      assert.equal(3, s.started)
      assert.equal(7, s.pending)
      assert.equal(0, s.idle)
      g.open()
      futures.wait(fs)
      for _, f in ipairs(fs) do assert.is_true(f:result()) end
      assert.equal(3, stats(ex).started)
      assert.matches("workers=3 pending=0", tostring(ex))
    end)

    it("reuse an idle worker before starting another", function()
      local ex <close> = futures.ThreadPoolExecutor(4)
      for i = 1, 5 do
        assert.equal(i, ex:submit(function(x) return x end, i):result(LONG))
        helpers.wait_until(function() return stats(ex).idle == 1 end, nil, "an idle worker")
      end
      local s = stats(ex)
      assert.equal(1, s.started)
      assert.equal(1, s.workers)
      local names = {}
      for i = 1, 3 do
        names[i] = ex:submit(futures.current_worker):result(LONG)
        helpers.wait_until(function() return stats(ex).idle == 1 end, nil, "an idle worker")
      end
      assert.equal(names[1], names[2])
      assert.equal(names[1], names[3])
    end)

    it("are named <kind>-<pool>_<worker>, or <prefix>_<worker>", function()
      assert.is_nil(futures.current_worker())
      local a <close> = futures.ThreadPoolExecutor(1)
      local b <close> = futures.ThreadPoolExecutor(1)
      local na = a:submit(futures.current_worker):result(LONG)
      local nb = b:submit(function() return futures.current_worker() end):result(LONG)
      local pa = tonumber(na:match("^ThreadPoolExecutor%-(%d+)_0$"))
      local pb = tonumber(nb:match("^ThreadPoolExecutor%-(%d+)_0$"))
      assert.is_number(pa, na)
      assert.is_number(pb, nb)
      assert.is_true(pb > pa)
      local io_ex <close> = futures.ThreadPoolExecutor{ max_workers = 2, thread_name_prefix = "io" }
      local g <close> = gate()
      local f1 = io_ex:submit(function(p) helpers.await_gate(p); return futures.current_worker() end, g.path)
      local f2 = io_ex:submit(function(p) helpers.await_gate(p); return futures.current_worker() end, g.path)
      helpers.wait_running(f1)
      helpers.wait_running(f2)
      g.open()
      local names = { f1:result(LONG), f2:result(LONG) }
      table.sort(names)
      assert.same({ "io_0", "io_1" }, names)
      local empty <close> = futures.ThreadPoolExecutor{ max_workers = 1, thread_name_prefix = "" }
      assert.matches("^ThreadPoolExecutor%-%d+_0$", empty:submit(futures.current_worker):result(LONG))
    end)

    it("run the initializer once per worker, with initargs, and keep its globals", function()
      local ex <close> = futures.ThreadPoolExecutor{
        max_workers = 2,
        initializer = function(a, b)
          inits = (inits or 0) + 1           -- luacheck: ignore
          base = a + b                       -- luacheck: ignore
          count = 0                          -- luacheck: ignore
        end,
        initargs = { 10, 5 },
      }
      local g <close> = gate()
      local task = function(path)
        if path then helpers.await_gate(path) end
        count = count + 1                    -- luacheck: ignore
        return inits, base, count, futures.current_worker()
      end
      -- two workers, both busy, then more calls on each
      local f1 = ex:submit(task, g.path)
      local f2 = ex:submit(task, g.path)
      helpers.wait_running(f1)
      helpers.wait_running(f2)
      g.open()
      local per_worker = {}
      for _, f in ipairs({ f1, f2 }) do
        local inits, base, count, name = f:result(LONG)
        assert.equal(1, inits)
        assert.equal(15, base)
        assert.equal(1, count)
        per_worker[name] = 1
      end
      for _ = 1, 10 do
        local inits, base, count, name = ex:submit(task):result(LONG)
        assert.equal(1, inits)
        assert.equal(15, base)
        assert.equal(per_worker[name] + 1, count)
        per_worker[name] = count
      end
      assert.equal(2, stats(ex).started)
    end)

    it("initializer accepts no initargs", function()
      local ex <close> = futures.ThreadPoolExecutor{ max_workers = 1, initializer = function(...)
        nargs = select("#", ...)             -- luacheck: ignore
      end }
      assert.equal(0, ex:submit(function() return nargs end):result(LONG))
    end)

    it("a failing initializer breaks the pool", function()
      local ex = futures.ThreadPoolExecutor{ max_workers = 2, initializer = function(x)
        error("cannot init " .. x)
      end, initargs = { "db" } }
      -- the pool may break while we submit (a slow machine, valgrind):
      -- from then on submit raises it instead
      local fs = {}
      for i = 1, 5 do
        local ok, f = pcall(ex.submit, ex, function() return i end)
        if not ok then
          assert.is_true(futures.BrokenThreadPool:is(f), tostring(f))
          assert.is_true(i > 1, "the first submit raised")
          break
        end
        fs[i] = f
      end
      for _, f in ipairs(fs) do
        local e = f:exception(LONG)
        assert.is_true(futures.BrokenThreadPool:is(e), tostring(e))
        assert.is_true(futures.BrokenExecutor:is(e))
        helpers.contains(e.message, "cannot init db")
        raises(futures.BrokenThreadPool, f.result, f)
      end
      local e = raises(futures.BrokenThreadPool, ex.submit, ex, print)
      helpers.contains(e.message, "cannot init db")
      helpers.contains(tostring(ex), "broken")
      ex:shutdown()
      ex:shutdown()
      raises(futures.BrokenThreadPool, ex.submit, ex, print)
    end)
  end)

  describe("breaking", function()
    it("fails every call submitted while the pool breaks, none stays pending", function()
      -- submit as fast as possible while the only worker's initializer
      -- fails: each call is either refused or failed, never left queued
      -- (bounded: under valgrind, which runs one thread at a time, the
      -- worker may not get to break the pool for a long while)
      local rounds = os.getenv("FUTURES_VALGRIND") and 5 or 100
      for _ = 1, rounds do
        local ex = futures.ThreadPoolExecutor{ max_workers = 1, initializer = function() error("no") end }
        local fs = {}
        for _ = 1, 5000 do
          local ok, f = pcall(ex.submit, ex, function() return 1 end)
          if not ok then
            assert.is_true(futures.BrokenThreadPool:is(f), tostring(f))
            break
          end
          fs[#fs + 1] = f
        end
        local _, not_done = futures.wait(fs, helpers.LONG)
        assert.equal(0, #not_done, "calls left pending by a broken pool")
        for _, f in ipairs(fs) do
          assert.is_true(futures.BrokenThreadPool:is(f:exception()))
        end
      end
    end)
  end)

  describe("shutdown", function()
    it("waits for running and pending work, and the workers are gone", function()
      local ex = futures.ThreadPoolExecutor(2)
      local fs = {}
      for i = 1, 20 do fs[i] = ex:submit(function(x) futures.sleep(0.001); return x end, i) end
      ex:shutdown()
      for i, f in ipairs(fs) do
        assert.is_true(f:done())
        assert.equal(i, f:result(0))
      end
      assert.same({ workers = 0, idle = 0, pending = 0, started = 2 }, stats(ex))
    end)

    it("raises ShutdownError on submit afterwards, and is harmless twice", function()
      local ex = futures.ThreadPoolExecutor(1)
      assert.equal(1, ex:submit(function() return 1 end):result(LONG))
      ex:shutdown()
      local e = raises(futures.ShutdownError, ex.submit, ex, function() end)
      assert.equal(e.where .. " futures.ShutdownError: " .. e.message, tostring(e))
      ex:shutdown()
      ex:shutdown(false)
      ex:shutdown(true, true)
      raises(futures.ShutdownError, ex.submit, ex, function() end)
      raises(futures.ShutdownError, function() for _ in ex:map(print, { 1 }) do end end)
    end)

  end)

  describe("as a to-be-closed variable", function()
    it("waits for the work at the end of the scope", function()
      local fs = {}
      do
        local ex <close> = futures.ThreadPoolExecutor(2)
        for i = 1, 6 do fs[i] = ex:submit(function(x) futures.sleep(0.01); return x end, i) end
      end
      for i, f in ipairs(fs) do
        assert.is_true(f:done())
        assert.equal(i, f:result(0))
      end
    end)

    it("keeps an error in flight", function()
      local f
      local ok, e = pcall(function()
        local ex <close> = futures.ThreadPoolExecutor(1)
        f = ex:submit(function() futures.sleep(0.02); return "finished" end)
        error({ tag = "mine" })
      end)
      assert.is_false(ok)
      assert.same({ tag = "mine" }, e)
      assert.is_true(f:done())
      assert.equal("finished", f:result(0))
      local ok2, e2 = pcall(function()
        local ex <close> = futures.ThreadPoolExecutor(1)
        error("plain", 0)
      end)
      assert.is_false(ok2)
      assert.equal("plain", e2)
    end)
  end)

  describe("garbage collected", function()
    it("still runs its queued calls", function()
      local fs = {}
      local weak = setmetatable({}, { __mode = "v" })
      do
        local ex = futures.ThreadPoolExecutor(2)
        weak[1] = ex
        for i = 1, 20 do fs[i] = ex:submit(function(x) futures.sleep(0.002); return x * 10 end, i) end
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      for i, f in ipairs(fs) do assert.equal(i * 10, f:result(LONG)) end
    end)

    it("many executors created and dropped do not pile up", function()
      for _ = 1, 50 do
        local ex = futures.ThreadPoolExecutor(2)
        ex:submit(function() return 1 end)
      end
      collectgarbage()
      collectgarbage()
      local ex <close> = futures.ThreadPoolExecutor(1)
      assert.equal(1, ex:submit(function() return 1 end):result(LONG))
    end)
  end)

  describe("at interpreter exit", function()
    it("runs every queued call, also after shutdown(false) and garbage collection", function()
      local out, ok = helpers.run_lua([[
        local futures = require "futures"
        local ex = futures.ThreadPoolExecutor(1)
        for i = 1, 3 do ex:submit(function(x) futures.sleep(0.02); print("ran", x) end, i) end
        ex:shutdown(false)
        local dropped = futures.ThreadPoolExecutor(1)
        dropped:submit(function() futures.sleep(0.02); print("dropped ran") end)
        dropped = nil
        collectgarbage()
        print("main done")
      ]])
      assert.is_true(ok, out)
      for i = 1, 3 do helpers.contains(out, "ran\t" .. i) end
      helpers.contains(out, "dropped ran")
      helpers.contains(out, "main done")
    end)
  end)

  describe("map", function()
    local ex
    setup(function() ex = futures.ThreadPoolExecutor(4) end)
    teardown(function() ex:shutdown() end)

    -- An iterator over 1..n that counts how far it was consumed.
    local function counting(n)
      local c = { consumed = 0 }
      function c.iter()
        if n and c.consumed >= n then return nil end
        c.consumed = c.consumed + 1
        return c.consumed
      end
      return c
    end

    it("yields index and results in input order, whatever the completion order", function()
      local got = {}
      for i, r in ex:map(function(x) futures.sleep((10 - x) * 0.002); return x * x end,
                         { 1, 2, 3, 4, 5, 6, 7, 8, 9 }) do
        got[#got + 1] = { i, r }
      end
      local want = {}
      for x = 1, 9 do want[x] = { x, x * x } end
      assert.same(want, got)
    end)

    it("yields all the values of each call", function()
      local got = {}
      for i, a, b, c in ex:map(function(x) return x, nil, x * 2 end, { 1, 2, 3 }) do
        got[i] = { a, b, c }
      end
      assert.same({ { 1, nil, 2 }, { 2, nil, 4 }, { 3, nil, 6 } }, got)
    end)

    it("does not stop at nil or false results", function()
      local n = 0
      for i, r in ex:map(function(x) if x % 2 == 0 then return nil end return false end, { 1, 2, 3, 4 }) do
        n = n + 1
        assert.equal(n, i)
        assert.is_true(r == nil or r == false)
      end
      assert.equal(4, n)
      n = 0
      for _ in ex:map(function() end, { 1, 2, 3 }) do n = n + 1 end
      assert.equal(3, n)
    end)

    it("zips several iterables and stops at the shortest", function()
      local got = {}
      for i, r in ex:map(function(a, b, c) return a .. b .. c end,
                         { "a", "b", "c", "d" }, { "x", "y" }, { "1", "2", "3" }) do
        got[i] = r
      end
      assert.same({ "ax1", "by2" }, got)
    end)

    it("takes iterator functions", function()
      local c = counting(5)
      local got = {}
      for i, r in ex:map(function(a, b) return a + b end, c.iter, { 10, 20, 30, 40, 50, 60 }) do
        got[i] = r
      end
      assert.same({ 11, 22, 33, 44, 55 }, got)
      local words = ("one two three"):gmatch("%a+")
      local up = {}
      for i, w in ex:map(string.upper, words) do up[i] = w end
      assert.same({ "ONE", "TWO", "THREE" }, up)
    end)

    it("handles an empty input", function()
      for _ in ex:map(print, {}) do error("no calls expected") end
      for _ in ex:map(print, function() return nil end) do error("no calls expected") end
    end)

    it("rejects bad arguments", function()
      arg_error({ "#1", "map" }, function() ex:map(42, { 1 }) end)
      arg_error({ "map", "iterable" }, function() ex:map(print) end)
      arg_error({ "map", "iterable" }, function() ex:map(print, 42) end)
      arg_error({ "map", "unknown option" }, function() ex:map(print, { 1 }, { timeuot = 1 }) end)
      arg_error({ "map", "timeout" }, function() ex:map(print, { 1 }, { timeout = "1" }) end)
      arg_error({ "map", "buffersize" }, function() ex:map(print, { 1 }, { buffersize = 0 }) end)
      -- chunksize is accepted and ignored by threads
      local n = 0
      for _, r in ex:map(function(x) return x end, { 1, 2, 3 }, { chunksize = 2 }) do n = n + r end
      assert.equal(6, n)
    end)

    it("raises TimeoutError from the loop, counted from the map call", function()
      local single <close> = futures.ThreadPoolExecutor(1)
      local g <close> = gate()
      local got = {}
      local ok, e = pcall(function()
        for i, r in single:map(function(x, p)
          started = (started or 0) + 1      -- luacheck: ignore
          if x == 2 then helpers.await_gate(p) end
          return x
        end, { 1, 2, 3, 4 }, { g.path, g.path, g.path, g.path }, { timeout = 0.1 }) do
          got[i] = r
        end
      end)
      assert.is_false(ok)
      assert.is_true(futures.TimeoutError:is(e), tostring(e))
      assert.same({ 1 }, got)
      -- the calls after the one that timed out were cancelled
      g.open()
      assert.equal(2, single:submit(function() return started end):result(LONG))

      -- a call still pending when its wait times out is cancelled too
      local g2 <close> = gate()
      local blocker = single:submit(await_gate, g2.path)
      helpers.wait_running(blocker)
      local ok2, e2 = pcall(function()
        for _ in single:map(function() started = started + 1 end, { 1, 2 }, { timeout = 0.05 }) do
          error("no result expected")
        end
      end)
      assert.is_false(ok2)
      assert.is_true(futures.TimeoutError:is(e2), tostring(e2))
      g2.open()
      assert.equal(2, single:submit(function() return started end):result(LONG))
    end)

    it("with buffersize consumes the input lazily", function()
      local single <close> = futures.ThreadPoolExecutor(1)
      local g <close> = gate()
      local c = counting(nil)   -- endless
      -- the first call blocks: only buffersize calls are taken meanwhile
      local ok, e = pcall(function()
        for _ in single:map(function(x, p)
          if x == 1 then helpers.await_gate(p) end
          return x
        end, c.iter, function() return g.path end, { buffersize = 3, timeout = 0.1 }) do
          error("no result expected")
        end
      end)
      assert.is_true(futures.TimeoutError:is(e), tostring(e))
      assert.is_false(ok)
      assert.equal(3, c.consumed)
      g.open()

      -- an endless input, with a break
      local c2 = counting(nil)
      local n = 0
      for i, r in ex:map(function(x) return x * 2 end, c2.iter, { buffersize = 4 }) do
        assert.equal(i * 2, r)
        assert.is_true(c2.consumed <= i + 4, "consumed " .. c2.consumed .. " at " .. i)
        n = n + 1
        if i == 50 then break end
      end
      assert.equal(50, n)
      assert.is_true(c2.consumed <= 54)

      -- and a finite one, to the end
      local c3 = counting(20)
      local sum = 0
      for i, r in ex:map(function(x) return x end, c3.iter, { buffersize = 1 }) do
        assert.equal(i, r)
        assert.is_true(c3.consumed <= i + 1)
        sum = sum + r
      end
      assert.equal(210, sum)
    end)

    it("cancels the calls not yet started when the loop is left by break", function()
      local single <close> = futures.ThreadPoolExecutor(1)
      local g <close> = gate()
      local function task(x, p)
        started = (started or 0) + 1      -- luacheck: ignore
        if x > 1 then helpers.await_gate(p) end
        return x
      end
      for i, r in single:map(task, { 1, 2, 3, 4, 5, 6, 7, 8 }, function() return g.path end) do
        assert.equal(1, r)
        if i == 1 then break end
      end
      g.open()
      -- call 2 may have started; calls 3..8 were cancelled
      local started = single:submit(function() return started end):result(LONG)
      assert.is_true(started <= 2, "started " .. started .. " calls")
    end)

    it("cancels the calls not yet started when the loop body raises", function()
      local single <close> = futures.ThreadPoolExecutor(1)
      local g <close> = gate()
      local function task(x, p)
        started = (started or 0) + 1      -- luacheck: ignore
        if x > 1 then helpers.await_gate(p) end
        return x
      end
      local ok, e = pcall(function()
        for _ in single:map(task, { 1, 2, 3, 4, 5, 6 }, function() return g.path end) do
          error("body failed", 0)
        end
      end)
      assert.is_false(ok)
      assert.equal("body failed", e)
      g.open()
      assert.is_true(single:submit(function() return started end):result(LONG) <= 2)
    end)

    it("re-raises a call's error at its turn", function()
      local got = {}
      local ok, e = pcall(function()
        for i, r in ex:map(function(x)
          if x == 3 then error({ bad = x }) end
          return x
        end, { 1, 2, 3, 4, 5 }) do
          got[i] = r
        end
      end)
      assert.is_false(ok)
      assert.same({ bad = 3 }, e)
      assert.same({ 1, 2 }, got)
    end)

    it("can be driven by hand, without a for loop", function()
      local it = ex:map(function(x) return -x end, { 1, 2 })
      assert.same({ 1, -1 }, { it() })
      assert.same({ 2, -2 }, { it() })
      assert.is_nil(it())
    end)
  end)
end)
