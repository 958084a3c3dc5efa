-- futures.Queue: values streamed between the caller and running calls,
-- on thread and process workers.  Gates and queues order the steps; every
-- timeout is generous and only a failing run waits for one.
local futures = require "futures"
local core = require "futures.core"
local helpers = require "helpers"

local T = 30   -- seconds: a timeout that only a broken queue reaches

local function collect()
  for _ = 1, 4 do collectgarbage() end
end

-- Every spec above the dying worker runs with the queue's short cuts on
-- and off (core._queue_fast: scalars past the general codec, spinning
-- before a wait), so that both paths keep the contract.
for _, fast in ipairs { true, false } do
describe("(queue short cuts " .. (fast and "on" or "off") .. ")", function()
  local was
  setup(function()
    was = core._queue_fast()
    core._queue_fast(fast)
  end)
  teardown(function() core._queue_fast(was) end)

  describe("futures.Queue", function()
    it("keeps FIFO order; #q and tostring", function()
      local q = futures.Queue(10)
      assert.equal("<Queue size=0 maxsize=10>", tostring(q))
      for i = 1, 3 do q:put(i) end
      q:put({ x = "y" })
      assert.equal(4, #q)
      assert.equal("<Queue size=4 maxsize=10>", tostring(q))
      assert.equal(1, q:get())
      assert.equal(2, q:get())
      assert.equal(3, q:get())
      assert.same({ x = "y" }, q:get())
      assert.equal("<Queue size=0 maxsize=0>", tostring(futures.Queue()))
    end)

    it("carries scalars exactly: integers, floats, booleans, strings", function()
      local long = ("x\0y"):rep(40)   -- past the inline bytes and REF_MINSTR
      local vals = { 0, -1, 7, math.maxinteger, math.mininteger, 1.0, -0.0, 0.5,
        math.huge, -math.huge, true, false, "", "a", long }
      local q = futures.Queue()
      for _, v in ipairs(vals) do q:put(v) end
      q:put(0 / 0)
      q:put({ 1, "two" })   -- a table between scalars keeps its place
      q:put(3)
      for _, v in ipairs(vals) do
        local got = q:get()
        assert.equal(math.type(v), math.type(got))
        assert.equal(v, got)
        if v == 0 and math.type(v) == "float" then assert.equal(1 / v, 1 / got) end
      end
      local nan = q:get()
      assert.is_true(nan ~= nan)
      assert.same({ 1, "two" }, q:get())
      assert.equal(3, q:get())
      assert.equal(0, #q)
    end)


    it("keeps order while its ring grows, wraps and shrinks", function()
      local q, n, want = futures.Queue(), 0, 1
      for _, step in ipairs { { 10, 5 }, { 30, 20 }, { 5000, 5015 }, { 40, 25 }, { 3000, 3015 } } do
        for _ = 1, step[1] do n = n + 1; q:put(n) end
        for _ = 1, step[2] do
          assert.equal(want, q:get())
          want = want + 1
        end
        assert.equal(n - want + 1, #q)
      end
      assert.equal(0, #q)
      q:put({ big = ("x"):rep(100) })   -- a boxed message after the shrink
      assert.equal(100, #q:get().big)
    end)

    it("times out a put on a full queue and a get on an empty one", function()
      local q = futures.Queue(1)
      q:put("a")
      local ok, err = pcall(q.put, q, "b", 0.01)
      assert.is_false(ok)
      assert.is_true(futures.TimeoutError:is(err))
      assert.equal("a", q:get(0))
      ok, err = pcall(q.get, q, 0.01)
      assert.is_false(ok)
      assert.is_true(futures.TimeoutError:is(err))
    end)

    it("raises ShutdownError after close, for get once drained; close twice", function()
      local q = futures.Queue()
      q:put(1)
      q:close()
      q:close()
      assert.equal("<Queue size=1 maxsize=0 closed>", tostring(q))
      local ok, err = pcall(q.put, q, 2)
      assert.is_true(futures.ShutdownError:is(err), tostring(err))
      assert.equal(1, q:get())
      ok, err = pcall(q.get, q)
      assert.is_false(ok)
      assert.is_true(futures.ShutdownError:is(err))
    end)

    it("iterates until closed and drained", function()
      local q = futures.Queue()
      for i = 1, 5 do q:put(i) end
      q:close()
      local got = {}
      for v in q:iter() do got[#got + 1] = v end
      assert.same({ 1, 2, 3, 4, 5 }, got)
      local open = futures.Queue()
      local ok, err = pcall(function() for _ in open:iter(0.01) do end end)
      assert.is_false(ok)
      assert.is_true(futures.TimeoutError:is(err))
    end)

    it("refuses nil and a bad maxsize, naming the argument", function()
      local q = futures.Queue()
      local ok, err = pcall(function() q:put(nil) end)
      assert.is_false(ok)
      helpers.contains(err, "bad argument #1 to 'put'")
      for _, bad in ipairs({ -1, 1.5, "x" }) do
        ok, err = pcall(futures.Queue, bad)
        assert.is_false(ok)
        helpers.contains(err, "maxsize")
      end
    end)

    it("frees a queue once its last holder is gone", function()
      collect()
      local before = core._live_queues()
      do
        local q = futures.Queue()
        local inner = futures.Queue()
        q:put({ inner })   -- a queue held only by a value of another
        assert.equal(before + 2, core._live_queues())
      end
      collect()
      assert.equal(before, core._live_queues())
    end)

    it("suspends a waiting coroutine and resumes it", function()
      local q = futures.Queue(1)
      local got = {}
      local consumer = futures.spawn(function()
        for _ = 1, 3 do got[#got + 1] = q:get(T) end
        return "consumed"
      end)
      assert.same({}, got)          -- waiting, and the main thread is free
      q:put("a")
      local producer = futures.spawn(function()
        q:put("b", T)
        q:put("c", T)               -- waits for room
        return "produced"
      end)
      assert.equal("produced", producer:result(T))
      assert.equal("consumed", consumer:result(T))
      assert.same({ "a", "b", "c" }, got)
      local late = futures.spawn(function() return pcall(q.get, q, 0.01) end)
      local ok, err = late:result(T)
      assert.is_false(ok)
      assert.is_true(futures.TimeoutError:is(err))
    end)
  end)

  for _, kind in ipairs({ "ThreadPoolExecutor", "ProcessPoolExecutor" }) do
    describe("futures.Queue with a " .. kind, function()
      local ex
      setup(function() ex = futures[kind](2) end)
      teardown(function() ex:shutdown() end)

      it("is the same queue in the caller when it comes back", function()
        local q = futures.Queue()
        local f = ex:submit(function(t) t.q:put("hi") return { back = t.q }, t.q end, { q = q })
        local t, again = f:result(T)
        assert.equal(q, t.back)
        assert.equal(q, again)
        assert.equal("hi", q:get(T))
      end)

      it("streams many producers into the caller, nothing lost or doubled", function()
        local q = futures.Queue(50)
        local fs = {}
        for w = 1, 4 do
          fs[w] = ex:submit(function(q, w) for i = 1, 500 do q:put(w * 10000 + i) end end, q, w)
        end
        local seen, last = {}, {}
        for _ = 1, 2000 do
          local v = q:get(T)
          assert.is_nil(seen[v])
          seen[v] = true
          local w = v // 10000
          assert.is_true((last[w] or 0) < v)   -- each producer's values in order
          last[w] = v
        end
        for _, f in ipairs(fs) do f:result(T) end
        assert.equal(0, #q)
      end)

      it("delivers every put of producers that finished before the consumer came", function()
        local q = futures.Queue(5)
        local fs = {}
        for w = 1, 2 do
          fs[w] = ex:submit(function(q, w) for i = 1, 400 do q:put(w * 1000 + i) end return w end, q, w)
        end
        local got = 0
        -- read slowly until both calls are done: some of their puts may then
        -- still wait for room (sent ahead, in the proxy)
        while got < 800 and not (fs[1]:done() and fs[2]:done()) do
          q:get(T)
          got = got + 1
        end
        while got < 800 do q:get(T); got = got + 1 end
        assert.equal(0, #q)
        assert.same({ 1, 2 }, { fs[1]:result(T), fs[2]:result(T) })
      end)

      it("feeds a consumer in a worker", function()
        local q = futures.Queue(10)
        local f = ex:submit(function(q)
          local s = 0
          for v in q:iter() do s = s + v end
          return s
        end, q)
        for i = 1, 1000 do q:put(i, T) end
        q:close()
        assert.equal(500500, f:result(T))
      end)

      it("shares a stream between consumers in workers, each value once", function()
        local q = futures.Queue(10)
        local take = function(q)
          local got = {}
          for v in q:iter() do got[#got + 1] = v end
          return got
        end
        local fs = { ex:submit(take, q), ex:submit(take, q) }
        for i = 1, 2000 do q:put(i % 3 == 0 and tostring(i) or i, T) end
        q:close()
        local seen, n = {}, 0
        for _, f in ipairs(fs) do
          local last = 0
          for _, v in ipairs(f:result(T)) do
            v = tonumber(v)
            assert.is_true(v > last)   -- each consumer sees the stream in order
            assert.is_nil(seen[v])
            seen[v], last, n = true, v, n + 1
          end
        end
        assert.equal(2000, n)
      end)

      it("blocks a producer in a worker while full (backpressure)", function()
        local q = futures.Queue(2)
        local f = ex:submit(function(q) for i = 1, 5 do q:put(i) end return #q end, q)
        helpers.wait_until(function() return #q == 2 end, T, "a full queue")
        assert.is_false(f:done())
        local got = {}
        for _ = 1, 5 do got[#got + 1] = q:get(T) end
        assert.same({ 1, 2, 3, 4, 5 }, got)
        f:result(T)
      end)

      it("reports timeouts and a closed queue inside the worker", function()
        local q = futures.Queue(1)
        q:put(0)
        local f = ex:submit(function(q)
          local r = {}
          r[1] = tostring(select(2, pcall(q.put, q, 1, 0.01)))
          r[2] = q:get()
          r[3] = tostring(select(2, pcall(q.get, q, 0.01)))
          r[4] = tostring(q)
          q:close()
          r[5] = tostring(select(2, pcall(q.put, q, 2)))
          return r
        end, q)
        local r = f:result(T)
        helpers.contains(r[1], "TimeoutError: the queue stayed full")
        assert.equal(0, r[2])
        helpers.contains(r[3], "TimeoutError: the queue stayed empty")
        assert.equal("<Queue size=0 maxsize=1>", r[4])
        helpers.contains(r[5], "ShutdownError: the queue is closed")
        assert.equal("<Queue size=0 maxsize=1 closed>", tostring(q))
      end)

      it("frees the queue once the worker is done with it", function()
        collect()
        local before = core._live_queues()
        do
          local q = futures.Queue()
          ex:submit(function(q) q:put(1) end, q):result(T)
          assert.equal(1, q:get(T))
        end
        -- the worker drops its handle when its state collects it (either
        -- worker: both are asked); queues of earlier cases may go too
        helpers.wait_until(function()
          local fs = {}
          for i = 1, 4 do fs[i] = ex:submit(function() collectgarbage() collectgarbage() end) end
          for _, f in ipairs(fs) do f:result(T) end
          collect()
          return core._live_queues() <= before
        end, T, "the queue freed")
      end)
    end)
  end
end)
end

describe("futures.Queue and a dying process worker", function()
  it("keeps what a killed worker put", function()
    local ex = futures.ProcessPoolExecutor(1)
    local q, gate = futures.Queue(), futures.Queue()
    local f = ex:submit(function(q, gate)
      for i = 1, 100 do q:put(i) end
      gate:get()   -- waits here until killed
    end, q, gate)
    helpers.wait_until(function() return #q == 100 end, T, "the puts")
    ex:kill_workers()
    assert.has_error(function() f:result(T) end)
    for i = 1, 100 do assert.equal(i, q:get(0)) end
    ex:shutdown()
  end)

  it("keeps what a worker put before os.exit", function()
    local ex = futures.ProcessPoolExecutor(1)
    local q = futures.Queue()
    local f = ex:submit(function(q)
      for i = 1, 300 do q:put(i) end   -- most of them sent ahead, unacknowledged
      os.exit(3)
    end, q)
    assert.has_error(function() f:result(T) end)
    local got = {}
    while #q > 0 do got[#got + 1] = q:get(0) end
    assert.equal(300, #got)
    for i = 1, 300 do assert.equal(i, got[i]) end
    ex:shutdown()
  end)
end)

describe("futures.Queue and Ctrl-C #interrupt", function()
  it("interrupts q:get in a child interpreter", function()
    local script = [[
      io.stdout:setvbuf("no")
      io.write(("pid %d\n"):format(io.open("/proc/self/stat"):read("n")))
      local futures = require "futures"
      local q = futures.Queue()
      print("ready")
      q:get()
      print("not reached")
    ]]
    local cmd = ("export %s; exec %s -e %s 2>&1"):format(
      helpers.child_env(), helpers.LUA, helpers.shell_quote(script))
    local p = assert(io.popen(cmd, "r"))
    local pid, out = nil, {}
    for line in p:lines() do
      pid = pid or line:match("^pid (%d+)$")
      out[#out + 1] = line
      if line == "ready" then assert(os.execute("kill -INT " .. pid)) end
    end
    p:close()
    local text = table.concat(out, "\n")
    helpers.contains(text, "interrupted!")
    assert.is_nil(text:find("not reached", 1, true), text)
  end)
end)
