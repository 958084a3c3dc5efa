-- futures.mpi: MPIPoolExecutor over the ranks of an MPI job.  Each script
-- in spec/mpi/ runs once under `mpiexec --oversubscribe -n 3` (one start
-- costs about a second, so cases are grouped); rank 0 prints a line per
-- case, the worker ranks a line per session they served, and every `it`
-- below checks its line.  Skipped (pending) when the module was not built
-- (no MPI), when mpiexec is missing, and under the sanitizer and valgrind
-- targets: Open MPI's own threads and allocations are not instrumented
-- there, and mpi.so is not built with their flags.
local helpers = require "helpers"

local function skip_reason()
  if os.getenv("FUTURES_VALGRIND") then return "MPI specs do not run under valgrind" end
  if helpers.LUA ~= "lua5.4" then return "MPI specs do not run under the sanitizer builds" end
  if not package.searchpath("futures.mpi", package.cpath) then
    return "futures.mpi is not built (no mpicc found)"
  end
  if os.execute("command -v mpiexec >/dev/null 2>&1") ~= true then return "mpiexec not found" end
  return nil
end
local SKIP = skip_reason()

local MPIEXEC = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
  .. "timeout 120 mpiexec --oversubscribe -n 3 "

-- Output and exit status of a script, run once however many specs ask.
local runs = {}
local function run(script)
  if not runs[script] then
    local cmd = ("%s %s%s spec/mpi/%s 2>&1"):format(helpers.child_env(), MPIEXEC, helpers.LUA, script)
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    local ok, _, code = p:close()
    runs[script] = { out = out, ok = ok, code = code }
  end
  return runs[script]
end

local function check_case(script, name)
  local r = run(script)
  local line = r.out:match("case " .. name .. " ([^\n]*)")
  assert(line, ("no result for case %s; output:\n%s"):format(name, r.out))
  assert(line == "ok", name .. ": " .. line)
end

local function served(script, session)
  local r = run(script)
  for rank = 1, 2 do
    helpers.contains(r.out, ("rank %d served %s\n"):format(rank, session))
  end
end

local function spec(name, fn)
  it(name, function()
    if SKIP then return pending(SKIP) end
    fn()
  end)
end

describe("MPIPoolExecutor", function()
  describe("on one executor over 2 worker ranks", function()
    for _, c in ipairs {
      { "rank_size", "mpi.rank() and mpi.size(); tostring" },
      { "submit_on_two_ranks", "submit/result run on both ranks at once" },
      { "map_chunksize_in_order", "map with chunksize yields in input order; an error re-raises" },
      { "wait_as_completed", "wait and as_completed (ALL and FIRST_COMPLETED)" },
      { "error_carries_worker_traceback", "an error carries the worker rank's traceback" },
      { "transfer_errors", "a userdata argument or result is a TransferError" },
      { "cancel_pending", "pending calls cancel; running ones do not" },
      { "many_distinct_functions", "more distinct functions than a rank keeps: forgotten, sent again" },
      { "window_earned_again", "after tiny calls, slow ones are not sent ahead behind running ones" },
      { "shutdown", "shutdown(true) waits for the work; submit then raises" },
    } do
      spec(c[2], function() check_case("pool.lua", c[1]) end)
    end
    spec("worker ranks return nil after shutdown and the script goes on", function()
      local r = run("pool.lua")
      served("pool.lua", "pool")
      for rank = 0, 2 do helpers.contains(r.out, ("rank %d continues"):format(rank)) end
      assert(r.ok, "mpiexec exit status " .. tostring(r.code) .. ":\n" .. r.out)
    end)
  end)

  describe("one executor after another", function()
    for _, c in ipairs {
      { "initializer_initargs", "init", "initializer(table.unpack(initargs)) runs on every rank" },
      { "failing_initializer_breaks", "broken", "a failing initializer breaks it with BrokenProcessPool" },
      { "never_used", "unused", "one never used still releases the ranks" },
      { "max_workers_one", "one", "max_workers = 1 uses rank 1 only" },
      { "no_call_waits_behind_a_long_one", "close", "no call waits behind a long one while a rank is free; <close>" },
    } do
      spec(c[3], function()
        check_case("lifecycle.lua", c[1])
        served("lifecycle.lua", c[2])
      end)
    end
    spec("bad arguments are argument errors", function() check_case("lifecycle.lua", "arguments") end)
    spec("one left to the interpreter's exit runs its queued call", function()
      check_case("lifecycle.lua", "left_to_exit")
      served("lifecycle.lua", "exit")
      local r = run("lifecycle.lua")
      helpers.contains(r.out, "queued call ran")
      assert(r.ok, "mpiexec exit status " .. tostring(r.code) .. ":\n" .. r.out)
    end)
  end)
end)
