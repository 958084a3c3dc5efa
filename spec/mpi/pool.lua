-- The executor's methods and futures, on one executor over 2 worker ranks.
local futures = require "futures"
local mpi = require "futures.mpi"
local helpers = require "helpers"
local C = require "mpi.common"
local case = C.case
local LONG = helpers.LONG

C.session("pool", nil, function(ex)
  case("rank_size", function()
    assert(mpi.rank() == 0, "rank " .. mpi.rank())
    assert(mpi.size() == 3, "size " .. mpi.size())
    helpers.contains(tostring(ex), "<MPIPoolExecutor max_workers=2 pending=0>")
  end)

  case("submit_on_two_ranks", function()
    -- Two calls that each wait for the gate: both run at once, on two ranks.
    local g <close> = helpers.gate()
    local function task(path, x)
      require("helpers").await_gate(path)
      return x * 2, require("futures").current_worker()
    end
    local f1, f2 = ex:submit(task, g.path, 1), ex:submit(task, g.path, 2)
    helpers.wait_running(f1)
    helpers.wait_running(f2)
    g.open()
    local a, wa = f1:result(LONG)
    local b, wb = f2:result(LONG)
    assert(a == 2 and b == 4, "results " .. tostring(a) .. ", " .. tostring(b))
    local names = { [wa] = true, [wb] = true }
    assert(names["MPIPoolExecutor-0_1"] and names["MPIPoolExecutor-0_2"],
      "workers " .. tostring(wa) .. ", " .. tostring(wb))
    local x, y, z = ex:submit(function(...) return ... end, 1, nil, "three"):result(LONG)
    assert(x == 1 and y == nil and z == "three")
  end)

  case("map_chunksize_in_order", function()
    local items = {}
    for i = 1, 1000 do items[i] = i end
    local n = 0
    for i, sq, id in ex:map(function(x) return x * x, x end, items, { chunksize = 37 }) do
      n = n + 1
      assert(i == n and sq == n * n and id == n, "call " .. i)
    end
    assert(n == 1000, n .. " results")
    n = 0
    for i, s in ex:map(function(a, b) return a .. b end, { "a", "b", "c" }, { "x", "y" }) do
      n = n + 1
      assert(s == ({ "ax", "by" })[i])
    end
    assert(n == 2)
    local ok, e = pcall(function()
      for _ in ex:map(function(x) if x == 7 then error("seven") end return x end, items, { chunksize = 5 }) do end
    end)
    assert(not ok and tostring(e):find("seven", 1, true), tostring(e))
  end)

  case("wait_as_completed", function()
    local fs = {}
    for i = 1, 10 do fs[i] = ex:submit(function(x) require("futures").sleep(0.001 * x); return x end, i) end
    local done, not_done = futures.wait(fs, LONG)
    assert(#done == 10 and #not_done == 0)
    local seen = 0
    for f in futures.as_completed(fs, LONG) do seen = seen + f:result(0) end
    assert(seen == 55)
    local g <close> = helpers.gate()
    local slow = ex:submit(helpers.await_gate, g.path)
    local quick = ex:submit(function() return "quick" end)
    local d1 = futures.wait({ slow, quick }, LONG, futures.FIRST_COMPLETED)
    assert(#d1 == 1 and d1[1] == quick)
    g.open()
    assert(slow:result(LONG) == true)
  end)

  case("error_carries_worker_traceback", function()
    local f = ex:submit(function() local t = nil; return t.field end)
    local ok, e = pcall(f.result, f, LONG)
    assert(not ok)
    helpers.contains(e, "attempt to index")
    helpers.contains(e, "traceback")
    helpers.contains(e, "spec/mpi/pool.lua:")   -- where it failed, on the worker rank
    assert(f:traceback() and f:traceback():find("pool.lua", 1, true))
    assert(not f:exception():find("traceback", 1, true))
    local tbl = ex:submit(function() error({ code = 7 }) end)
    local ok2, e2 = pcall(tbl.result, tbl, LONG)
    assert(not ok2 and type(e2) == "table" and e2.code == 7)
  end)

  case("transfer_errors", function()
    local f = ex:submit(function(x) return x end, io.stdout)
    local e = helpers.raises(futures.TransferError, f.result, f, LONG)
    helpers.contains(e.message, "argument #1")
    helpers.contains(e.message, "userdata")
    local r = ex:submit(function() return io.stdout end)
    local e2 = helpers.raises(futures.TransferError, r.result, r, LONG)
    helpers.contains(e2.message, "result #1")
    assert(ex:submit(function() return "still fine" end):result(LONG) == "still fine")
  end)

  case("cancel_pending", function()
    local g <close> = helpers.gate()
    local a = ex:submit(helpers.await_gate, g.path)
    local b = ex:submit(helpers.await_gate, g.path)
    helpers.wait_running(a)
    helpers.wait_running(b)
    futures.sleep(0.02)   -- both heads run long now: nothing should be sent behind them
    local fs = {}
    for i = 1, 10 do fs[i] = ex:submit(function() return i end) end
    -- A call the driver sent ahead before it saw the heads run long counts
    -- as running, as on a process pool: cancel() refuses it and it runs.
    local cancelled = {}
    for i = 1, 10 do cancelled[i] = fs[i]:cancel() end
    assert(not a:cancel(), "a running call cancelled")
    g.open()
    assert(a:result(LONG) and b:result(LONG))
    local n = 0
    for i = 1, 10 do
      if cancelled[i] then
        n = n + 1
        helpers.raises(futures.CancelledError, fs[i].result, fs[i], 0)
      else
        assert(fs[i]:result(LONG) == i, "call " .. i .. " neither cancelled nor run")
      end
    end
    assert(n >= 8, n .. " of 10 pending calls cancelled")
  end)

  case("many_distinct_functions", function()
    -- More distinct functions than a rank keeps (the set is bounded, as a
    -- worker process's): the oldest are forgotten and sent again when used.
    local fns = {}
    for i = 1, 1300 do fns[i] = assert(load("return function(x) return x + " .. i .. " end"))() end
    local fs = {}
    for i = 1, 1300 do fs[i] = ex:submit(fns[i], 1) end
    for i = 1, 1300 do assert(fs[i]:result(LONG) == i + 1, "call " .. i) end
    for i = 1, 1300, 7 do assert(ex:submit(fns[i], 2):result(LONG) == i + 2, "again " .. i) end
  end)

  case("window_earned_again", function()
    -- Tiny calls earn each rank a wide window; a rank that ran dry earns it
    -- again, so the slow calls that follow are not sent ahead behind the
    -- ones running (a call sent cannot be taken back from a rank).
    local items = {}
    for i = 1, 2000 do items[i] = i end
    for _ in ex:map(function(x) return x end, items) do end
    local g <close> = helpers.gate()
    local a = ex:submit(helpers.await_gate, g.path)
    local b = ex:submit(helpers.await_gate, g.path)
    local c = ex:submit(helpers.await_gate, g.path)
    helpers.wait_running(a)
    helpers.wait_running(b)
    local pending = c:cancel()
    g.open()
    assert(a:result(LONG) and b:result(LONG))
    assert(pending, "the third call was sent ahead behind a running one")
  end)

  case("shutdown", function()
    local f = ex:submit(function() require("futures").sleep(0.05); return "ran" end)
    ex:shutdown(true)
    assert(f:done() and f:result(0) == "ran")
    helpers.raises(futures.ShutdownError, ex.submit, ex, print)
    ex:shutdown()   -- twice: harmless
    helpers.contains(tostring(ex), "shutdown")
  end)
end)
print(("rank %d continues"):format(mpi.rank()))
