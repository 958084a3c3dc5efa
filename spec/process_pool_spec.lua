-- ProcessPoolExecutor (docs/reference.md "Executors"): construction, values of every
-- kind crossing to worker processes and back, big payloads, many tasks,
-- map (order, chunksize, buffersize), initializers, max_tasks_per_child,
-- worker names, stdout, errors, values that cannot cross, shutdown in all
-- its forms, terminate/kill, and what a worker process inherits.
-- Faults (dying workers, garbage on the pipes) are in process_faults_spec.
local futures = require "futures"
local helpers = require "helpers"
local core = require "futures.core"

local LONG = helpers.LONG
local gate, await_gate = helpers.gate, helpers.await_gate
local raises, arg_error = helpers.raises, helpers.arg_error
local contains = helpers.contains
local PID = futures.getpid()

local sh, fd_count = helpers.sh, helpers.fd_count


-- Children of this process, and how many of them are zombies.
local function children()
  local n, z = 0, 0
  for stat in sh("ps --ppid " .. PID .. " -o stat=,comm="):gmatch("[^\n]+") do
    if not stat:find("ps$") and not stat:find("sh$") then
      n = n + 1
      if stat:match("^%s*Z") then z = z + 1 end
    end
  end
  return n, z
end

-- Waits until no worker process of ours is left (none running, none a
-- zombie) and the descriptor count is back to `fds`.
local function assert_clean(fds)
  helpers.wait_until(function()
    local n = children()
    return n == 0 and fd_count() == fds
  end, LONG, "no child process and " .. fds .. " descriptors (have " .. fd_count() .. ")")
end

local stats = helpers.stats

local function getpid() return require("futures").getpid() end

local submit_all = helpers.submit_all

describe("ProcessPoolExecutor", function()
  local fds0

  setup(function()
    -- Warm up whatever the module opens once, then count.
    local px <close> = futures.ProcessPoolExecutor(1)
    px:submit(getpid):result(LONG)
    px:shutdown()
    collectgarbage(); collectgarbage()
    fds0 = fd_count()
  end)

  teardown(function()
    collectgarbage(); collectgarbage()
    assert_clean(fds0)
  end)

  describe("construction", function()
    it("defaults max_workers to cpu_count()", function()
      local a <close> = futures.ProcessPoolExecutor()
      assert.matches("max_workers=" .. futures.cpu_count() .. " ", tostring(a))
    end)

    it("rejects bad options", function()
      for _, bad in ipairs({ 0, -1, 2.5, "x", true }) do
        arg_error("max_workers", futures.ProcessPoolExecutor, bad)
        arg_error("max_tasks_per_child", futures.ProcessPoolExecutor, { max_tasks_per_child = bad })
      end
      arg_error("worker", futures.ProcessPoolExecutor, { worker = 42 })
      arg_error("thread_name_prefix", futures.ProcessPoolExecutor, { thread_name_prefix = "x" })
      arg_error("initializer", futures.ProcessPoolExecutor, { initializer = 1 })
    end)

  end)

  describe("submit", function()
    local px
    setup(function() px = futures.ProcessPoolExecutor(2) end)
    teardown(function() px:shutdown() end)

    it("runs the call in another process", function()
      local pid = px:submit(getpid):result(LONG)
      assert.is_number(pid)
      assert.are_not.equal(PID, pid)
      assert.same(true, sh("cat /proc/" .. pid .. "/cmdline"):find("worker", 1, true) ~= nil)
    end)

    it("carries nil, booleans, integers, floats and every byte, and all results", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      local r = table.pack(px:submit(function(...) return ... end,
        nil, true, false, 1, 1.0, -0.0, math.maxinteger, math.mininteger, 0 / 0, all, "", nil):result(LONG))
      assert.equal(12, r.n)
      assert.is_nil(r[1]); assert.is_true(r[2]); assert.is_false(r[3])
      assert.equal("integer", math.type(r[4])); assert.equal("float", math.type(r[5]))
      assert.equal(-math.huge, 1 / r[6])
      assert.equal(math.maxinteger, r[7]); assert.equal(math.mininteger, r[8])
      assert.is_true(r[9] ~= r[9])
      assert.equal(all, r[10]); assert.equal("", r[11]); assert.is_nil(r[12])
      assert.equal(0, select("#", px:submit(function() end):result(LONG)))
    end)

    it("keeps cycles, shared references and metatables of tables", function()
      local mt = { __index = function(_, k) return "mt:" .. k end }
      local t = setmetatable({ name = "root" }, mt)
      t.self = t
      local shared = { 1, 2 }
      t.a, t.b = shared, shared
      local c, same, cyc = px:submit(function(x)
        x.seen = true
        return x, x.a == x.b, x.self == x
      end, t):result(LONG)
      assert.is_true(same); assert.is_true(cyc)
      assert.equal(c, c.self)
      assert.equal(c.a, c.b)
      assert.same({ 1, 2 }, c.a)
      assert.equal("mt:zzz", c.zzz)
      assert.is_true(c.seen)
      assert.is_nil(rawget(t, "seen"))   -- copied, never shared
    end)

    it("sends functions with their upvalues, recursion and shared upvalues", function()
      local base = 100
      local function add(x) return x + base end
      assert.equal(105, px:submit(add, 5):result(LONG))
      local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
      assert.equal(55, px:submit(fib, 10):result(LONG))
      local counter = 0
      local function inc() counter = counter + 1; return counter end
      local function get() return counter end
      local a, b = px:submit(function(i, g) i(); i(); return g(), counter end, inc, get):result(LONG)
      assert.equal(2, a)      -- the three closures still share `counter` there
      assert.equal(2, b)
      assert.equal(0, counter)   -- and it is a copy
      -- a function comes back, and runs here
      local f = px:submit(function(k) return function(x) return x * k end end, 7):result(LONG)
      assert.equal(21, f(3))
    end)

    it("sends modules and named C functions by name", function()
      local str, fut = string, futures
      local up, name, sq = px:submit(function(s)
        return str.upper(s), fut.current_worker(), math.sqrt(16)
      end, "abc"):result(LONG)
      assert.equal("ABC", up)
      assert.matches("^ProcessPoolExecutor%-%d+_%d+$", name)
      assert.equal(4.0, sq)
      assert.equal("x-1", px:submit(string.format, "%s-%d", "x", 1):result(LONG))
      assert.equal(futures, px:submit(function() return require("futures") end):result(LONG))
    end)

    it("gives workers the creator's package.path and cpath", function()
      local p, cp = px:submit(function() return package.path, package.cpath end):result(LONG)
      assert.equal(package.path, p)
      assert.equal(package.cpath, cp)
    end)

    it("carries an argument and a result larger than the pipe buffer", function()
      local big = string.rep("0123456789abcdef", 4 * 65536 * 2)   -- 8 MiB
      local n, out = px:submit(function(s) return #s, s:reverse() .. s end, big):result(LONG)
      assert.equal(#big, n)
      assert.equal(2 * #big, #out)
      assert.is_true(out == big:reverse() .. big)
      local floats = px:submit(function(k)
        local t = {}
        for i = 1, k do t[i] = i + 0.5 end
        return t
      end, 500000):result(LONG)
      assert.equal(500000, #floats)
      assert.equal(500000.5, floats[500000])
    end)

    -- Big arrays of numbers in results reach the proxy through shared
    -- memory (the ring) and come back as one block the caller's table
    -- takes over; with the ring off they are encoded as values.
    describe("big arrays of numbers", function()
      local function arrays(n, k)
        local f, i, b = {}, {}, {}
        for j = 1, n do f[j], i[j], b[j] = j * k + 0.5, j * k, j % 3 == 0 end
        b[7] = nil   -- a hole
        return f, i, b, { n = n }
      end
      for _, ring in ipairs { true, false } do
        local how = ring and "through the ring" or "as values"
        local function pool(opts)
          local was, before = core._result_ring()
          core._result_ring(ring)   -- for the workers this pool starts
          local p = futures.ProcessPoolExecutor(opts)
          finally(function() core._result_ring(was); p:shutdown() end)
          return p, function()   -- asserts the way the arrays came
            local _, now = core._result_ring()
            if ring then assert.is_true(now > before) else assert.equal(before, now) end
          end
        end

        it("come back whole, several in one result, read twice (" .. how .. ")", function()
          local p, came = pool(2)
          local f = p:submit(arrays, 30000, 2)
          local a, b, c, d = f:result(LONG)
          assert.equal(30000, #a)
          assert.equal(60000.5, a[30000])
          assert.equal(math.type(b[30000]), "integer")
          assert.equal(60000, b[30000])
          assert.is_true(c[30000])
          assert.is_false(c[29999])
          assert.is_nil(c[7])
          assert.same({ n = 30000 }, d)
          local again = { f:result(LONG) }
          assert.equal(a, again[1])
          a[30001] = 1   -- grows like any table
          assert.equal(30001, #a)
          came()
        end)

        it("many in flight at once keep their values and order (" .. how .. ")", function()
          local p, came = pool(2)
          local n = 0
          local ks = {}
          for k = 1, 400 do ks[k] = k end
          for k, t in p:map(function(k)
            local t = {}
            for j = 1, 5000 do t[j] = j + k end
            return t
          end, ks) do
            n = n + 1
            assert.equal(n, k)
            assert.equal(5000, #t)
            assert.equal(1 + k, t[1])
            assert.equal(5000 + k, t[5000])
          end
          assert.equal(400, n)
          came()
        end)

        it("outlive the worker that sent them (" .. how .. ")", function()
          local p, came = pool { max_workers = 1, max_tasks_per_child = 1 }
          local fs = {}
          for k = 1, 6 do fs[k] = p:submit(arrays, 20000, k) end
          for k = 1, 6 do assert.equal(20000 * k + 0.5, (fs[k]:result(LONG))[20000]) end
          came()
        end)
      end

      it("that find the ring full go as values, and the ring serves again", function()
        local was, _, size = core._result_ring()
        core._result_ring(true, 256 * 1024)   -- room for three arrays of 5,000 floats
        local p = futures.ProcessPoolExecutor(1)
        finally(function() core._result_ring(was, size); p:shutdown() end)
        local function five(n)
          local r = {}
          for k = 1, 5 do
            local t = {}
            for j = 1, n do t[j] = j * k + 0.5 end
            r[k] = t
          end
          return table.unpack(r)
        end
        for _ = 1, 3 do   -- each call's arrays are read before the next: the same room again
          local _, before = core._result_ring()
          local got = { p:submit(five, 5000):result(LONG) }
          local _, after = core._result_ring()
          assert.equal(3, after - before)   -- the first three fit, the other two went as values
          for k = 1, 5 do
            assert.equal(5000, #got[k])
            assert.equal(k + 0.5, got[k][1])
            assert.equal(5000 * k + 0.5, got[k][5000])
          end
        end
        local _, before = core._result_ring()
        local a = p:submit(arrays, 20000, 1):result(LONG)   -- bigger than the ring
        assert.equal(20000.5, a[20000])
        assert.equal(before, (select(2, core._result_ring())))
      end)

      it("that hold a string or a table go as values", function()
        local t = px:submit(function()
          local t = {}
          for j = 1, 10000 do t[j] = j end
          t[5000] = "five thousand"
          return t
        end):result(LONG)
        assert.equal("five thousand", t[5000])
        assert.equal(10000, t[10000])
      end)

      it("are freed with a future nobody reads", function()
        helpers.unread_results_freed(px, arrays, 50000)
      end)
    end)

    it("runs 3,000 tasks without losing one #slow", function()
      local fs = {}
      for i = 1, 3000 do fs[i] = px:submit(function(x) return x, x * x end, i) end
      local done, not_done = futures.wait(fs, LONG * 3)
      assert.equal(3000, #done)
      assert.equal(0, #not_done)
      for i = 1, 3000 do
        local a, b = fs[i]:result(0)
        assert.equal(i, a)
        assert.equal(i * i, b)
      end
    end)

    it("re-raises an error value with its fields, and gives a traceback", function()
      local f = px:submit(function(code)
        local function deep() error(setmetatable({ code = code, list = { 1, 2 } },
          { __tostring = function(e) return "E" .. e.code end })) end
        deep()
      end, 42)
      local e = f:exception(LONG)
      assert.equal(42, e.code)
      assert.same({ 1, 2 }, e.list)
      assert.equal("E42", tostring(e))
      local ok, e2 = pcall(f.result, f)
      assert.is_false(ok)
      assert.equal(42, e2.code)
      local tb = f:traceback()
      contains(tb, "stack traceback")
      contains(tb, "deep")
      contains(tb, "process_pool_spec.lua")
      local g = px:submit(function() error("plain", 1) end)
      assert.matches("process_pool_spec%.lua:%d+: plain", g:exception(LONG))
      assert.equal(7, px:submit(error, 7):exception(LONG))
      assert.is_nil(px:submit(getpid):traceback())
    end)

    it("fails only the future whose argument cannot cross", function()
      local lud = debug.upvalueid(function() return px end, 1)
      local fs = {}
      fs[1] = px:submit(function(x) return x end, 1)
      fs[2] = px:submit(function(x) return x end, lud)
      fs[3] = px:submit(function(a, b) return a end, 3, { list = { 1, { conn = io.stdout } } })
      fs[4] = px:submit(function(x) return x end, 4)
      assert.equal(1, fs[1]:result(LONG))
      local e2 = raises(futures.TransferError, fs[2].result, fs[2], LONG)
      contains(e2.message, "argument #1")
      contains(e2.message, "userdata")
      local e3 = raises(futures.TransferError, fs[3].result, fs[3], LONG)
      contains(e3.message, "argument #2")
      contains(e3.message, "conn")
      contains(e3.message, "FILE*")
      assert.equal(4, fs[4]:result(LONG))
    end)

    it("fails only the future whose result cannot cross", function()
      local before = px:submit(function() futures.sleep(0.01); return "before" end)
      local bad = px:submit(function() return 1, io.stdout end)
      local co = px:submit(function() return { co = coroutine.create(print) } end)
      local after = px:submit(function() return "after" end)
      local e = raises(futures.TransferError, bad.result, bad, LONG)
      contains(e.message, "result #2")
      contains(e.message, "FILE*")
      raises(futures.TransferError, co.result, co, LONG)
      assert.equal("before", before:result(LONG))
      assert.equal("after", after:result(LONG))
      assert.equal("still", px:submit(function() return "still" end):result(LONG))
    end)

  end)

  describe("map", function()
    local px
    setup(function() px = futures.ProcessPoolExecutor(2) end)
    teardown(function() px:shutdown() end)

    it("yields results in input order, whatever the order of completion", function()
      local out = {}
      for i, v, w in px:map(function(x)
        futures.sleep((6 - x) * 0.005)   -- later calls finish first
        return x * 10, nil
      end, { 1, 2, 3, 4, 5 }) do
        out[#out + 1] = { i, v, w }
      end
      assert.same({ { 1, 10 }, { 2, 20 }, { 3, 30 }, { 4, 40 }, { 5, 50 } }, out)
    end)

    it("zips several iterables and takes iterator functions", function()
      local k = 0
      local function gen() k = k + 1; if k <= 4 then return k end end
      local out = {}
      for i, s in px:map(function(a, b) return a + b end, { 10, 20, 30, 40, 50 }, gen) do out[i] = s end
      assert.same({ 11, 22, 33, 44 }, out)
    end)

    it("with chunksize keeps order; an error surfaces at its own call's turn", function()
      local out = {}
      for i, v in px:map(function(x) return x * 2 end, { 1, 2, 3, 4, 5, 6, 7 }, { chunksize = 3 }) do
        out[i] = v
      end
      assert.same({ 2, 4, 6, 8, 10, 12, 14 }, out)

      local items = {}
      for i = 1, 10 do items[i] = i end
      local got = {}
      local ok, e = pcall(function()
        for i, v in px:map(function(x)
          if x == 5 then error({ at = x }) end
          return -x
        end, items, { chunksize = 3 }) do
          got[#got + 1] = v
        end
      end)
      assert.is_false(ok)
      assert.same({ at = 5 }, e)
      assert.same({ -1, -2, -3, -4 }, got)   -- 4 is in the failing chunk: it still yields
    end)

    it("with chunksize carries many calls and several values each", function()
      local items = {}
      for i = 1, 2000 do items[i] = i end
      local n = 0
      for i, a, b in px:map(function(x) return x, -x end, items, { chunksize = 128 }) do
        n = n + 1
        assert.equal(i, a)
        assert.equal(-i, b)
      end
      assert.equal(2000, n)
    end)

    it("with buffersize consumes the input lazily and keeps order", function()
      local pulled = 0
      local function gen()
        if pulled < 20 then pulled = pulled + 1; return pulled end
      end
      local iter, s, c, closer = px:map(function(x) return x * 3 end, gen, { buffersize = 2 })
      assert.is_true(pulled <= 2, "pulled " .. pulled .. " before the first result")
      local out = {}
      do
        local _ <close> = closer
        for i, v in iter, s, c do
          out[i] = v
          assert.is_true(pulled <= i + 2, "pulled " .. pulled .. " at result " .. i)
        end
      end
      assert.equal(20, #out)
      for i = 1, 20 do assert.equal(3 * i, out[i]) end
      -- with chunks too
      pulled = 0
      out = {}
      for i, v in px:map(function(x) return x end, gen, { buffersize = 2, chunksize = 3 }) do out[i] = v end
      assert.equal(20, #out)
      assert.equal(20, out[20])
    end)

    it("cancels the calls not started when the loop is left early", function()
      local px1 <close> = futures.ProcessPoolExecutor(1)
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      local items = {}
      for i = 1, 30 do items[i] = i end
      local first
      for _, v in px1:map(function(x, d)
        io.open(d .. "/" .. x, "w"):close()   -- it started
        futures.sleep(x == 1 and 0.05 or 0.02)
        return x
      end, items, setmetatable({}, { __index = function() return dir end })) do
        first = v
        break
      end
      assert.equal(1, first)
      px1:shutdown()
      local started = tonumber(sh("ls " .. dir .. " | wc -l"))
      os.execute("rm -rf " .. dir)
      assert.is_true(started < 30, "all 30 calls ran")
    end)

    it("raises TimeoutError from the iterator", function()
      local g <close> = gate()
      local px1 <close> = futures.ProcessPoolExecutor(1)   -- shut down before the gate goes
      local t0 = futures.monotonic()
      raises(futures.TimeoutError, function()
        for _ in px1:map(await_gate, { g.path, g.path }, { timeout = 0.05 }) do end
      end)
      assert.is_true(futures.monotonic() - t0 < LONG)
      g.open()
    end)
  end)

  describe("workers", function()
    it("start lazily, up to max_workers, and an idle one is reused", function()
      local px <close> = futures.ProcessPoolExecutor(2)
      assert.same({}, px:_pids())
      assert.equal(0, stats(px).started)
      local pids = {}
      for _ = 1, 5 do
        pids[px:submit(getpid):result(LONG)] = true
        helpers.wait_until(function() return stats(px).idle == 1 end, LONG, "an idle worker")
      end
      local n = 0
      for _ in pairs(pids) do n = n + 1 end
      assert.equal(1, n)   -- one worker did it all
      assert.equal(1, #px:_pids())
      local g <close> = gate()
      local fs = {}
      for i = 1, 6 do fs[i] = px:submit(function(p) require("helpers").await_gate(p); return getpid() end, g.path) end
      helpers.wait_until(function() return #px:_pids() == 2 end, LONG, "two workers")
      assert.equal(2, stats(px).started)
      g.open()
      for i = 1, 6 do assert.is_number(fs[i]:result(LONG)) end
      assert.equal(2, #px:_pids())
    end)

    it("are named ProcessPoolExecutor-<pool>_<worker>; the main state has no name", function()
      assert.is_nil(futures.current_worker())
      local a <close> = futures.ProcessPoolExecutor(1)
      local b <close> = futures.ProcessPoolExecutor(1)
      local na = a:submit(futures.current_worker):result(LONG)
      local nb = b:submit(function() return futures.current_worker() end):result(LONG)
      local pa, wa = na:match("^ProcessPoolExecutor%-(%d+)_(%d+)$")
      local pb, wb = nb:match("^ProcessPoolExecutor%-(%d+)_(%d+)$")
      assert.is_truthy(pa, na)
      assert.is_truthy(pb, nb)
      assert.equal(tonumber(pa) + 1, tonumber(pb))
      assert.equal("0", wa)
      assert.equal("0", wb)
    end)

    it("run the initializer once per worker with initargs; its globals persist", function()
      local px <close> = futures.ProcessPoolExecutor{ max_workers = 2,
        initializer = function(base, t)
          INIT_COUNT = (INIT_COUNT or 0) + 1
          BASE = base + t.extra
        end, initargs = { 40, { extra = 2 } } }
      local g <close> = gate()
      local task = function(p)
        if p then require("helpers").await_gate(p) end
        return INIT_COUNT, BASE, getpid()
      end
      local f1, f2 = px:submit(task, g.path), px:submit(task, g.path)
      helpers.wait_until(function() return #px:_pids() == 2 end, LONG, "two workers")
      g.open()
      local c1, b1, p1 = f1:result(LONG)
      local c2, b2, p2 = f2:result(LONG)
      assert.equal(1, c1); assert.equal(1, c2)
      assert.equal(42, b1); assert.equal(42, b2)
      assert.are_not.equal(p1, p2)
      for _ = 1, 10 do
        local c, b = px:submit(task):result(LONG)
        assert.equal(1, c)
        assert.equal(42, b)
      end
      assert.is_nil(rawget(_G, "INIT_COUNT"))
    end)

    it("a failing initializer breaks the pool: pending futures and later submits", function()
      local px <close> = futures.ProcessPoolExecutor{ max_workers = 2,
        initializer = function(why) error("init " .. why) end, initargs = { "failed" } }
      local fs = submit_all(px, 6, function(i) return i end)
      for i = 1, #fs do
        local e = raises(futures.BrokenProcessPool, fs[i].result, fs[i], LONG)
        contains(e.message, "init failed")
        assert.is_true(futures.BrokenExecutor:is(e))
      end
      local e = raises(futures.BrokenProcessPool, px.submit, px, print)
      contains(e.message, "init failed")
      contains(tostring(px), "broken")
    end)

    it("max_tasks_per_child replaces workers (pids change)", function()
      local px <close> = futures.ProcessPoolExecutor{ max_workers = 1, max_tasks_per_child = 2 }
      local pids = {}
      for i = 1, 6 do pids[i] = px:submit(getpid):result(LONG) end
      assert.equal(pids[1], pids[2])
      assert.are_not.equal(pids[2], pids[3])
      assert.equal(pids[3], pids[4])
      assert.are_not.equal(pids[4], pids[5])
      assert.equal(pids[5], pids[6])
    end)

    it("max_tasks_per_child with a backlog loses nothing", function()
      local px <close> = futures.ProcessPoolExecutor{ max_workers = 2, max_tasks_per_child = 3,
        initializer = function() TASKS = 0 end }
      local fs = {}
      for i = 1, 50 do
        fs[i] = px:submit(function(x) TASKS = TASKS + 1; return x, getpid(), TASKS end, i)
      end
      local per = {}
      for i = 1, 50 do
        local x, pid, n = fs[i]:result(LONG)
        assert.equal(i, x)
        assert.is_true(n <= 3, "a worker ran " .. n .. " tasks")
        per[pid] = (per[pid] or 0) + 1
      end
      local workers = 0
      for _, n in pairs(per) do
        workers = workers + 1
        assert.is_true(n <= 3)
      end
      assert.is_true(workers >= 17, workers .. " workers")
      -- the same with map chunks (one chunk is one task)
      local out = {}
      for i, v in px:map(function(x) return x end, { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, { chunksize = 2 }) do
        out[i] = v
      end
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, out)
      px:shutdown()
      assert.same({}, px:_pids())
    end)

    it("print in a task reaches the parent's stdout", function()
      local out, ok = helpers.run_lua([[
        local futures = require "futures"
        local px <close> = futures.ProcessPoolExecutor(1)
        px:submit(function(a) print("hello from", a); io.write("no newline") end, "worker"):result(10)
        px:shutdown()
        print("parent done")
      ]])
      assert.is_true(ok, out)
      contains(out, "hello from\tworker\n")
      contains(out, "no newline")
      contains(out, "parent done")
    end)

    it("inherit no stray descriptor from the parent", function()
      local path = os.tmpname()
      local fh = assert(io.open(path, "w"))   -- no close-on-exec
      local px <close> = futures.ProcessPoolExecutor(1)
      local fds = px:submit(function()
        local list = {}
        for fd in pairs(require("helpers").fds(require("futures").getpid())) do list[#list + 1] = fd end
        table.sort(list)
        return list
      end):result(LONG)
      fh:close()
      os.remove(path)
      -- 0, 1, 2 and the two pipes (helpers.fds leaves out its own)
      assert.same({ 0, 1, 2, 3, 4 }, fds, "worker descriptors: " .. table.concat(fds, " "))
    end)

    it("ignore SIGINT, also while they start", function()
      for _ = 1, 5 do
        local px <close> = futures.ProcessPoolExecutor(1)
        local g <close> = gate()
        local f = px:submit(function(p) return require("helpers").await_gate(p), getpid() end, g.path)
        helpers.wait_until(function() return #px:_pids() == 1 end, LONG, "a worker")
        local pid = px:_pids()[1]
        assert.is_true(os.execute("kill -INT " .. pid))   -- maybe before its first instruction
        helpers.wait_running(f)
        assert.is_true(os.execute("kill -INT " .. pid))
        g.open()
        local opened, ran = f:result(LONG)
        assert.is_true(opened)
        assert.equal(pid, ran)
        assert.equal(pid, px:submit(getpid):result(LONG))
      end
    end)
  end)

  it("survives a Ctrl-C to the whole process group: only the caller's wait ends", function()
    local script = [[
      local futures = require "futures"
      local px <close> = futures.ProcessPoolExecutor(1)
      local pid = px:submit(futures.getpid):result(10)
      -- the task runs until the caller was interrupted, however late that is
      local gate = require("helpers").gate()
      local f = px:submit(function(path)
        require("helpers").await_gate(path)
        return "survived", futures.getpid()
      end, gate.path)
      local ps = io.popen("ps -o pgid= -p " .. futures.getpid())
      local pgid = ps:read("n")
      ps:close()
      local ok, e = pcall(function()
        os.execute(("(sleep 0.1; kill -INT -%d) &"):format(pgid))
        return f:result(10)
      end)
      print("interrupted", ok, tostring(e):find("interrupted") ~= nil)
      gate.open()
      local r, ran = f:result(10)
      gate.close()
      print("task", r, ran == pid)
      print("again", px:submit(function() return "fine" end):result(10))
    ]]
    local cmd = ("%s setsid %s -e %s 2>&1"):format(helpers.child_env(), helpers.LUA, helpers.shell_quote(script))
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    p:close()
    contains(out, "interrupted\tfalse\ttrue")
    contains(out, "task\tsurvived\ttrue")   -- in the same worker
    contains(out, "again\tfine")
  end)

  describe("shutdown", function()
    it("waits for running and pending work; the workers are gone", function()
      local px = futures.ProcessPoolExecutor(2)
      local fs = {}
      for i = 1, 20 do fs[i] = px:submit(function(x) futures.sleep(0.002); return x end, i) end
      px:shutdown()
      for i = 1, 20 do
        assert.is_true(fs[i]:done())
        assert.equal(i, fs[i]:result(0))
      end
      assert.same({}, px:_pids())
      assert.equal(0, stats(px).workers)
      local n, z = children()
      assert.equal(0, n)
      assert.equal(0, z)
      raises(futures.ShutdownError, px.submit, px, print)
      px:shutdown()   -- twice: harmless
      contains(tostring(px), "shutdown")
    end)

    it("happens at the end of a <close> scope, keeping an error in flight", function()
      local fs = {}
      local keep
      do
        local px <close> = futures.ProcessPoolExecutor(2)
        keep = px
        for i = 1, 6 do fs[i] = px:submit(function(x) futures.sleep(0.005); return x end, i) end
      end
      for i = 1, 6 do assert.is_true(fs[i]:done()) end
      assert.same({}, keep:_pids())
      local f
      local ok, e = pcall(function()
        local px <close> = futures.ProcessPoolExecutor(1)
        f = px:submit(function() futures.sleep(0.02); return "finished" end)
        error("in flight")
      end)
      assert.is_false(ok)
      contains(e, "in flight")
      assert.is_true(f:done())
      assert.equal("finished", f:result(0))
    end)

    it("at interpreter exit waits for every queued call, also after shutdown(false)", function()
      local out, ok = helpers.run_lua([[
        local futures = require "futures"
        local a = futures.ProcessPoolExecutor(1)
        for i = 1, 3 do a:submit(function(x) futures.sleep(0.01); print("a", x) end, i) end
        local b = futures.ProcessPoolExecutor(1)
        b:submit(function() futures.sleep(0.05); print("b ran") end)
        b:shutdown(false)
        print("main done")
      ]])
      assert.is_true(ok, out)
      contains(out, "main done")
      for i = 1, 3 do contains(out, "a\t" .. i .. "\n") end
      contains(out, "b ran")
    end)

    it("of a garbage-collected executor still runs the queued calls", function()
      local fs = {}
      do
        local px = futures.ProcessPoolExecutor(1)
        for i = 1, 10 do fs[i] = px:submit(function(x) return x * 2 end, i) end
      end
      collectgarbage(); collectgarbage()
      for i = 1, 10 do assert.equal(2 * i, fs[i]:result(LONG)) end
      helpers.wait_until(function() return children() == 0 end, LONG, "the workers to exit")
    end)
  end)

  describe("terminate_workers and kill_workers", function()
    for _, method in ipairs({ "terminate_workers", "kill_workers" }) do
      it(method .. " ends every worker; running and pending futures fail", function()
        local fds = fd_count()
        local px = futures.ProcessPoolExecutor(2)
        local fs = {}
        for i = 1, 10 do fs[i] = px:submit(function() futures.sleep(60) end) end
        helpers.wait_until(function() return #px:_pids() == 2 end, LONG, "two workers")
        helpers.wait_running(fs[1])
        px[method](px)
        for i = 1, 10 do
          raises(futures.BrokenProcessPool, fs[i].result, fs[i], LONG)
        end
        raises(futures.BrokenProcessPool, px.submit, px, print)
        px:shutdown()
        assert.same({}, px:_pids())
        assert_clean(fds)
      end)

      it(method .. " is harmless before any worker started", function()
        local px = futures.ProcessPoolExecutor(2)
        px[method](px)
        px[method](px)
        px:shutdown()
        assert.equal(0, stats(px).started)
        raises(futures.BrokenProcessPool, px.submit, px, print)
      end)
    end

    it("kill_workers right after submit (a worker being started) still ends it", function()
      for _ = 1, 20 do
        local px = futures.ProcessPoolExecutor(2)
        local fs = {}
        for i = 1, 4 do fs[i] = px:submit(function() futures.sleep(60) end) end
        px:kill_workers()
        for i = 1, 4 do raises(futures.BrokenProcessPool, fs[i].result, fs[i], LONG) end
        px:shutdown()
      end
      assert_clean(fds0)
    end)
  end)

  it("leaves no process and no descriptor behind", function()
    collectgarbage(); collectgarbage()
    assert_clean(fds0)
  end)
end)
