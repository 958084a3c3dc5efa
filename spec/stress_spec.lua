-- A stress run (tagged slow; `busted --exclude-tags=slow` skips it):
-- 100,000 tiny tasks, with random cancels, random result timeouts, failing
-- calls and done-callbacks.  Every future must end accounted for: a
-- cancel() that said true means cancelled, anything else finished with
-- exactly its own outcome, and every callback ran once.  The seed is
-- printed; FUTURES_SEED=<seed> replays a run.
local futures = require "futures"
local helpers = require "helpers"

describe("#slow stress", function()
  it("accounts for 100,000 tiny tasks with random cancels and timeouts", function()
    local seed = tonumber(os.getenv("FUTURES_SEED")) or (os.time() ~ math.floor(futures.monotonic() * 1e6))
    print(("\nstress seed: %d (FUTURES_SEED=%d replays it)"):format(seed, seed))
    math.randomseed(seed)

    local N = 100000
    local ex = futures.ThreadPoolExecutor(8)
    local function task(x)
      if x % 97 == 0 then error({ x = x }) end
      if x % 1001 == 0 then futures.sleep(0.001) end
      return x * 2, x
    end

    local fs, said_cancel, cb_added, cb_ran = {}, {}, {}, {}
    local ncancel, ntimeout, nwaited = 0, 0, 0
    for i = 1, N do
      fs[i] = ex:submit(task, i)
      local r = math.random()
      if r < 0.10 then
        local j = math.random(math.max(1, i - 100), i)
        if fs[j]:cancel() and not said_cancel[j] then said_cancel[j] = true; ncancel = ncancel + 1 end
      elseif r < 0.12 then
        local j = math.random(math.max(1, i - 100), i)
        local f = fs[j]
        local ok, a, b = pcall(f.result, f, math.random() < 0.5 and 0 or math.random() * 0.0005)
        nwaited = nwaited + 1
        if ok then
          assert.equal(2 * j, a); assert.equal(j, b)
        elseif futures.TimeoutError:is(a) then
          ntimeout = ntimeout + 1
        elseif futures.CancelledError:is(a) then
          assert.is_true(said_cancel[j])
        else
          assert.same({ x = j }, a)
        end
      end
      if r > 0.9995 then
        -- now and then, wait on a random window of recent futures
        local window = {}
        for j = math.max(1, i - 50), i do window[#window + 1] = fs[j] end
        local done, not_done = futures.wait(window, 0.001, futures.FIRST_COMPLETED)
        assert.equal(#window, #done + #not_done)
        local seen = 0
        local ok, e = pcall(function()
          for f in futures.as_completed(window, 0.001) do assert.is_true(f:done()); seen = seen + 1 end
        end)
        assert.is_true(ok or futures.TimeoutError:is(e), tostring(e))
        assert.is_true(seen >= #done)
      end
      if r > 0.95 then
        cb_added[i] = true
        fs[i]:add_done_callback(function(f)
          assert.equal(fs[i], f)
          assert.is_nil(cb_ran[i])
          cb_ran[i] = true
        end)
      end
    end

    local done, not_done = futures.wait(fs, 120)
    assert.equal(0, #not_done)
    assert.equal(N, #done)
    futures.poll()
    ex:shutdown(true)
    local workers, idle, pending = ex:_stats()
    assert.same({ 0, 0, 0 }, { workers, idle, pending })

    local ncancelled, nfailed, nresults = 0, 0, 0
    for i = 1, N do
      local f = fs[i]
      assert.is_true(f:done())
      if f:cancelled() then
        assert.is_true(said_cancel[i], "future " .. i .. " cancelled without a cancel()")
        ncancelled = ncancelled + 1
      else
        assert.is_nil(said_cancel[i], "future " .. i .. ": cancel() said true")
        local ok, a, b = pcall(f.result, f, 0)
        if i % 97 == 0 then
          assert.is_false(ok)
          assert.same({ x = i }, a)
          nfailed = nfailed + 1
        else
          assert.is_true(ok, tostring(a))
          assert.equal(2 * i, a)
          assert.equal(i, b)
          nresults = nresults + 1
        end
      end
      assert.equal(cb_added[i], cb_ran[i])
    end
    assert.equal(ncancel, ncancelled)
    assert.equal(N, ncancelled + nfailed + nresults)
    print(("stress: %d results, %d failed, %d cancelled, %d waits (%d timed out)"):format(
      nresults, nfailed, ncancelled, nwaited, ntimeout))
  end)

  it("survives many executors, each with a burst, some cancelled by shutdown", function()
    local seed = tonumber(os.getenv("FUTURES_SEED")) or os.time()
    math.randomseed(seed)
    local total, ok_count, cancelled = 0, 0, 0
    for _ = 1, 200 do
      local ex = futures.ThreadPoolExecutor(math.random(1, 4))
      local fs = {}
      for k = 1, math.random(0, 50) do fs[k] = ex:submit(function(x) return x end, k) end
      ex:shutdown(math.random() < 0.5, math.random() < 0.5)
      futures.wait(fs, helpers.LONG)
      for k, f in ipairs(fs) do
        total = total + 1
        if f:cancelled() then cancelled = cancelled + 1
        else assert.equal(k, f:result(0)); ok_count = ok_count + 1 end
      end
    end
    assert.equal(total, ok_count + cancelled)
  end)
  it("accounts for 5,000 process-pool calls with random cancels, timeouts, chunks and shutdowns", function()
    local seed = tonumber(os.getenv("FUTURES_SEED")) or (os.time() ~ math.floor(futures.monotonic() * 1e6))
    print(("\nprocess stress seed: %d (FUTURES_SEED=%d replays it)"):format(seed, seed))
    math.randomseed(seed)
    local function task(x, pad)
      if x % 89 == 0 then error({ x = x }) end
      return x * 3, #pad
    end
    local settled = 0
    for round = 1, 5 do
      local px = futures.ProcessPoolExecutor{ max_workers = 2,
        max_tasks_per_child = math.random() < 0.5 and math.random(50, 400) or nil }
      local fs, said_cancel = {}, {}
      for i = 1, 1000 do
        -- random sizes: some arguments bigger than a pipe buffer
        local pad = string.rep("p", math.random() < 0.02 and math.random(70000, 200000) or math.random(0, 64))
        fs[i] = px:submit(task, i, pad)
        if math.random() < 0.05 then
          local j = math.random(1, i)
          if fs[j]:cancel() then said_cancel[j] = true end
        end
        if math.random() < 0.01 then pcall(fs[math.random(1, i)].result, fs[math.random(1, i)], 0) end
      end
      -- a chunked map racing with the submits' completions
      local n = 0
      for k, v in px:map(function(x) return x + 1 end, { 1, 2, 3, 4, 5, 6, 7, 8 }, { chunksize = 3 }) do
        assert.equal(k + 1, v)
        n = n + 1
      end
      assert.equal(8, n)
      px:shutdown(true, math.random() < 0.3)
      for i, f in ipairs(fs) do
        assert.is_true(f:done())
        if said_cancel[i] then
          assert.is_true(f:cancelled())
        elseif not f:cancelled() then
          local ok, a, b = pcall(f.result, f, 0)
          if i % 89 == 0 then
            assert.is_false(ok)
            assert.equal(i, a.x)
          else
            assert.is_true(ok, tostring(a))
            assert.equal(i * 3, a)
            assert.is_number(b)
          end
        end
        settled = settled + 1
      end
    end
    assert.equal(5000, settled)
  end)
end)
