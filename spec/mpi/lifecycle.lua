-- Executors one after the other on the same job: initializers, a broken
-- pool, one never used, max_workers, <close>, dispatch around a long call,
-- and one left to the interpreter's exit.
local futures = require "futures"
local mpi = require "futures.mpi"
local helpers = require "helpers"
local C = require "mpi.common"
local case, session = C.case, C.session
local LONG = helpers.LONG

session("init", { initializer = function(a, b) X = a + b end, initargs = { 20, 22 } }, function(ex)
  case("initializer_initargs", function()
    local g <close> = helpers.gate()
    local function task(path) require("helpers").await_gate(path); return X end
    local f1, f2 = ex:submit(task, g.path), ex:submit(task, g.path)
    helpers.wait_running(f1)
    helpers.wait_running(f2)   -- one on each rank: both ran the initializer
    g.open()
    assert(f1:result(LONG) == 42 and f2:result(LONG) == 42)
  end)
  ex:shutdown()
end)

session("broken", { initializer = function() error("no init here") end }, function(ex)
  case("failing_initializer_breaks", function()
    local f = ex:submit(function() return 1 end)
    local e = helpers.raises(futures.BrokenProcessPool, f.result, f, LONG)
    assert(futures.BrokenExecutor:is(e))
    helpers.contains(e.message, "the initializer failed")
    helpers.contains(e.message, "no init here")
    helpers.wait_until(function() return tostring(ex):find("broken", 1, true) end)
    helpers.raises(futures.BrokenProcessPool, ex.submit, ex, print)
    ex:shutdown(true)
  end)
end)

session("unused", nil, function(ex)
  case("never_used", function() ex:shutdown(true) end)
end)

session("one", 1, function(ex)
  case("max_workers_one", function()
    helpers.contains(tostring(ex), "max_workers=1")
    for i = 1, 20 do
      local w = ex:submit(function() return require("futures").current_worker() end):result(LONG)
      assert(w:match("_1$"), w)
    end
    ex:shutdown()
  end)
end)

do
  local ex <close> = mpi.MPIPoolExecutor()
  if not ex then
    print(("rank %d served close"):format(mpi.rank()))
  else
    case("no_call_waits_behind_a_long_one", function()
      local g <close> = helpers.gate()
      local long = ex:submit(helpers.await_gate, g.path, LONG)
      helpers.wait_running(long)
      local fs = {}
      for i = 1, 30 do fs[i] = ex:submit(function(x) return x end, i) end
      for i = 1, 30 do assert(fs[i]:result(LONG) == i) end
      assert(not long:done(), "the long call ended first")
      g.open()
      assert(long:result(LONG) == true)
    end)
  end
end

if mpi.rank() == 0 then
  case("arguments", function()
    helpers.arg_error({ "max_workers", "between 1 and 2" }, mpi.MPIPoolExecutor, 3)
    helpers.arg_error("unknown option 'foo'", mpi.MPIPoolExecutor, { foo = 1 })
    helpers.arg_error("max_workers must be a positive integer", mpi.MPIPoolExecutor, 0)
  end)
end

-- Left to the interpreter's exit: the queued call still runs.
local ex = mpi.MPIPoolExecutor()
if ex then
  ex:submit(function() require("futures").sleep(0.05); print("queued call ran") end)
  print("case left_to_exit ok")
else
  print(("rank %d served exit"):format(mpi.rank()))
end
