-- Fault injection for the ProcessPoolExecutor (docs/reference.md "Errors", issue 8):
-- workers killed (SIGKILL, SIGSEGV) while idle, running or with calls
-- queued, tasks and initializers that call os.exit, a crash right before
-- shutdown, worker programs that write garbage or a truncated frame, and
-- one that does not exist.  Each must end in BrokenProcessPool, never hang,
-- and leave no zombie and no descriptor behind in this process.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local gate = helpers.gate
local raises, contains = helpers.raises, helpers.contains
local Broken = futures.BrokenProcessPool
local PID = futures.getpid()
-- Under `make sanitize`/`make tsan` specs run on an instrumented interpreter.
local test_lua = os.getenv("FUTURES_TEST_LUA")
local SANITIZED = test_lua ~= nil and test_lua ~= "lua5.4"

local sh, fd_count = helpers.sh, helpers.fd_count


-- Children of this process other than the listing's own shell and ps.
local function children()
  local n = 0
  for line in sh("ps --ppid " .. PID .. " -o stat=,comm="):gmatch("[^\n]+") do
    if not line:find("ps$") and not line:find("sh$") then n = n + 1 end
  end
  return n
end

local function zombies()
  local z = 0
  for stat in sh("ps --ppid " .. PID .. " -o stat="):gmatch("%S+") do
    if stat:sub(1, 1) == "Z" then z = z + 1 end
  end
  return z
end

-- Runs body(px_options_extra...) and then checks: no child left, not even
-- a zombie, and as many descriptors as before.
local function clean_after(body)
  collectgarbage(); collectgarbage()
  local fds = fd_count()
  body()
  collectgarbage(); collectgarbage()
  local ok, err = pcall(helpers.wait_until, function()
    return children() == 0 and fd_count() == fds
  end, LONG, "no child process and " .. fds .. " descriptors")
  if not ok then
    error(err .. "\n" .. sh("ps --ppid " .. PID .. " -o pid=,stat=,comm=; ls -l /proc/" .. PID .. "/fd"), 2)
  end
  assert.equal(0, zombies())
end

local function getpid() return require("futures").getpid() end

local submit_all = helpers.submit_all

-- The pid of the pool's one worker, once it is listed.
local function worker_pid(px)
  helpers.wait_until(function() return #px:_pids() == 1 end, LONG, "a worker process")
  return px:_pids()[1]
end

-- A task that says it started (a file next to the gate's), then waits.
local function gated(p)
  io.open(p .. ".in", "w"):close()
  require("helpers").await_gate(p)
  return "opened"
end

-- Waits until a gated task runs in its worker.
local function wait_started(g)
  helpers.wait_until(function()
    local fh = io.open(g.path .. ".in")
    if fh then fh:close(); os.remove(g.path .. ".in") end
    return fh ~= nil
  end, LONG, "the task to start in its worker")
end

local function kill(sig, pid, may_be_gone)
  local ok = os.execute(("kill -%s %d 2>/dev/null"):format(sig, pid))
  if not may_be_gone then assert.is_true(ok, "no process " .. pid) end
end

-- The futures must all be done: each either returned its value or failed
-- with BrokenProcessPool; returns how many failed.
local function settled(fs, value_of)
  local broken = 0
  for i, f in ipairs(fs) do
    local e = f:exception(LONG)
    if e == nil then
      assert.equal(value_of(i), (f:result(0)))
    else
      assert.is_true(Broken:is(e), "future " .. i .. ": " .. tostring(e))
      broken = broken + 1
    end
  end
  return broken
end

-- A worker program: a shell script (removed by the caller).
local function script(body)
  local path = os.tmpname()
  local fh = assert(io.open(path, "w"))
  fh:write("#!/bin/sh\n", body, "\n")
  fh:close()
  assert.is_true(os.execute("chmod +x " .. path))
  return path
end

describe("process pool faults", function()
  setup(function()
    local px <close> = futures.ProcessPoolExecutor(1)
    px:submit(getpid):result(LONG)   -- warm up what the module opens once
  end)

  describe("a worker killed with SIGKILL", function()
    it("while idle breaks the pool at once", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor(2)
        local pid = px:submit(getpid):result(LONG)
        helpers.wait_until(function() return select(2, px:_stats()) >= 1 end, LONG, "an idle worker")
        kill(9, pid)
        helpers.wait_until(function() return tostring(px):find("broken") ~= nil end, LONG,
          "the pool to break")
        local e = raises(Broken, px.submit, px, getpid)
        contains(e.message, "terminated abruptly")
        contains(e.message, "killed by signal 9")
        px:shutdown()
        assert.same({}, px:_pids())
      end)
    end)

    it("while running a task fails that future and the pending ones", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor(1)
        local g <close> = gate()
        local running = px:submit(gated, g.path)
        wait_started(g)
        local pending = {}
        for i = 1, 5 do pending[i] = px:submit(function() return i end) end
        kill(9, worker_pid(px))
        local e = raises(Broken, running.result, running, LONG)
        contains(e.message, "killed by signal 9")
        for i = 1, 5 do raises(Broken, pending[i].result, pending[i], LONG) end
        raises(Broken, px.submit, px, getpid)
        px:shutdown()
      end)
    end)

    it("with tasks queued settles every future, values or BrokenProcessPool", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor(2)
        local g <close> = gate()
        local fs = {}
        for i = 1, 200 do
          fs[i] = px:submit(function(x, p) require("helpers").await_gate(p); return x end, i, g.path)
        end
        helpers.wait_running(fs[1])
        helpers.wait_until(function() return #px:_pids() == 2 end, LONG, "two workers")
        kill(9, px:_pids()[1])
        g.open()
        local broken = settled(fs, function(i) return i end)
        assert.is_true(broken >= 1)
        raises(Broken, px.submit, px, getpid)
        px:shutdown()
      end)
    end)

    it("while a big argument is being written to it", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor(1)
        local pid = px:submit(getpid):result(LONG)
        kill("STOP", pid)   -- it reads nothing: the pipe fills up
        local big = px:submit(function(s) return #s end, string.rep("x", 8 << 20))
        local after = px:submit(getpid)
        helpers.wait_running(big)
        kill(9, pid)
        local e = raises(Broken, big.result, big, LONG)
        contains(e.message, "killed by signal 9")
        raises(Broken, after.result, after, LONG)
        px:shutdown()
      end)
    end)

    it("while it writes a big result", function()
      clean_after(function()
        for _ = 1, 3 do
          local px = futures.ProcessPoolExecutor(1)
          local pid = px:submit(getpid):result(LONG)
          local f = px:submit(function() return string.rep("y", 32 << 20) end)
          helpers.wait_running(f)
          kill(9, pid)
          local e = f:exception(LONG)
          if e ~= nil then
            assert.is_true(Broken:is(e), tostring(e))
          else
            assert.equal(32 << 20, #f:result(0))
          end
          px:shutdown()
        end
      end)
    end)
  end)

  -- Under a sanitizer the worker's runtime catches SIGSEGV to report it,
  -- and a SIGSEGV sent from outside at an unlucky moment can deadlock it
  -- inside the runtime (seen once under TSan on a loaded machine: the
  -- worker hung for minutes).  SIGABRT, which the runtimes leave alone,
  -- kills such a worker by a signal all the same.
  it("a worker killed with SIGSEGV breaks the pool", function()
    clean_after(function()
      local px = futures.ProcessPoolExecutor(1)
      local g <close> = gate()
      local f = px:submit(gated, g.path)
      wait_started(g)
      kill(SANITIZED and "ABRT" or "SEGV", worker_pid(px))
      local e = raises(Broken, f.result, f, LONG)
      contains(e.message, "terminated abruptly")
      contains(e.message, SANITIZED and "killed by signal 6" or "killed by signal 11")
      raises(Broken, px.submit, px, getpid)
      px:shutdown()
    end)
  end)

  it("os.exit inside a task breaks the pool", function()
    clean_after(function()
      local px = futures.ProcessPoolExecutor(2)
      local f = px:submit(function() os.exit(3) end)
      local e = raises(Broken, f.result, f, LONG)
      contains(e.message, "exited with status 3")
      raises(Broken, px.submit, px, getpid)
      px:shutdown()
      local px2 = futures.ProcessPoolExecutor(1)
      local f2 = px2:submit(function() os.exit(true, true) end)   -- a clean exit is still a death
      raises(Broken, f2.result, f2, LONG)
      px2:shutdown()
    end)
  end)

  it("a crash right before shutdown(true) does not hang it", function()
    clean_after(function()
      for round = 1, 5 do
        local px = futures.ProcessPoolExecutor(2)
        local fs = {}
        for i = 1, 30 do
          local ok, f = pcall(px.submit, px, function(x, r)
            if x == 3 + r then os.exit(1) end
            return x
          end, i, round)
          if not ok then   -- a slow host: it broke already
            assert.is_true(Broken:is(f), tostring(f))
            break
          end
          fs[i] = f
        end
        px:shutdown(true)
        for i = 1, #fs do assert.is_true(fs[i]:done(), "future " .. i) end
        assert.is_true(settled(fs, function(i) return i end) >= 1)
        assert.same({}, px:_pids())
      end
      -- and with a worker killed from outside while shutdown waits
      local px = futures.ProcessPoolExecutor(1)
      local g <close> = gate()
      local f = px:submit(gated, g.path)
      wait_started(g)
      kill(9, worker_pid(px))
      px:shutdown(true)
      raises(Broken, f.result, f, 0)
    end)
  end)

  describe("a worker program", function()
    local scripts = {}
    teardown(function() for _, p in ipairs(scripts) do os.remove(p) end end)
    local function worker(body)
      local p = script(body)
      scripts[#scripts + 1] = p
      return p
    end

    it("that writes garbage breaks the pool with no crash", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor{ max_workers = 1,
          worker = worker("printf 'garbage' >&4\nexec sleep 30") }
        local fs = submit_all(px, 3, function(i) return i end)
        for i = 1, #fs do
          local e = raises(Broken, fs[i].result, fs[i], LONG)
          if i == 1 then contains(e.message, "malformed") end
        end
        raises(Broken, px.submit, px, getpid)
        px:shutdown()
      end)
    end)

    it("that writes a truncated frame breaks the pool", function()
      clean_after(function()
        -- a valid length prefix (64 bytes of a RESULT frame), then nothing
        local px = futures.ProcessPoolExecutor{ max_workers = 1,
          worker = worker("printf '\\100\\000\\000\\000R\\001' >&4") }
        local f = px:submit(getpid)
        local e = raises(Broken, f.result, f, LONG)
        contains(e.message, "middle of a frame")
        px:shutdown()
      end)
    end)

    it("that writes a whole frame with a bad payload breaks the pool", function()
      clean_after(function()
        local FRAME = "the worker sent a malformed frame"
        local cases = {   -- a worker's script, and what the error says
          { "printf '\\002\\000\\000\\000R\\377' >&4", "malformed" },            -- bad varint
          { "printf '\\004\\000\\000\\000R\\007\\000\\000' >&4", "malformed" },  -- wrong task id
          { "printf '\\001\\000\\000\\000T' >&4", "malformed" },                 -- a parent's type
          { "printf '\\000\\000\\000\\000' >&4", "malformed" },                  -- empty frame
          { "printf '\\377\\377\\377\\377R' >&4", "malformed" },                 -- absurd length
          -- results naming an array in the ring, which the proxy checks: of
          -- no slots, past its end, and one whose slot holds a table's tag
          { "printf '\\011\\000\\000\\000\\122\\000\\000\\000\\001\\000\\001\\000\\001' >&4", FRAME },
          { "printf '\\015\\000\\000\\000\\122\\000\\000\\000\\001\\000\\341\\377\\377\\377\\001\\002\\001' >&4", FRAME },
          { "printf '\\105' | dd of=/proc/self/fd/6 bs=1 seek=4104 conv=notrunc 2>/dev/null\n"
            .. "printf '\\011\\000\\000\\000\\122\\000\\000\\000\\001\\000\\001\\001\\001' >&4", FRAME },
        }
        for _, case in ipairs(cases) do
          local px = futures.ProcessPoolExecutor{ max_workers = 1, worker = worker(case[1] .. "\nexec sleep 30") }
          local f = px:submit(getpid)
          local e = raises(Broken, f.result, f, LONG)
          contains(e.message, case[2])
          px:shutdown()
        end
      end)
    end)

    it("that exits at once breaks the pool", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor{ max_workers = 1, worker = worker("exit 7") }
        local f = px:submit(getpid)
        local e = raises(Broken, f.result, f, LONG)
        contains(e.message, "exited with status 7")
        px:shutdown()
      end)
    end)

    it("that does not exist gives BrokenProcessPool with a clear message", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor{ max_workers = 2, worker = "/nonexistent/futures-worker" }
        local fs = submit_all(px, 4, function(i) return i end)
        for i = 1, #fs do
          local e = raises(Broken, fs[i].result, fs[i], LONG)
          contains(e.message, "cannot start the worker program")
          contains(e.message, "/nonexistent/futures-worker")
          contains(e.message, "No such file")
        end
        raises(Broken, px.submit, px, getpid)
        px:shutdown()
      end)
    end)
  end)

  describe("an initializer", function()
    it("that calls os.exit breaks the pool", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor{ max_workers = 2, initializer = function() os.exit(5) end }
        local fs = submit_all(px, 5, function(i) return i end)
        for i = 1, #fs do
          local e = raises(Broken, fs[i].result, fs[i], LONG)
          if i == 1 then contains(e.message, "status 5") end
        end
        raises(Broken, px.submit, px, getpid)
        px:shutdown()
      end)
    end)

    it("that raises breaks the pool with its message", function()
      clean_after(function()
        local px = futures.ProcessPoolExecutor{ max_workers = 1,
          initializer = function() error({ reason = "table error" }) end }
        local f = px:submit(getpid)
        local e = raises(Broken, f.result, f, LONG)
        contains(e.message, "the initializer failed")
        raises(Broken, px.submit, px, getpid)
        px:shutdown()
      end)
    end)
  end)

  describe("terminate_workers on a worker that does not act on SIGTERM", function()
    -- The real worker program, started with SIGTERM ignored (a disposition
    -- exec keeps).  A stopped process would not do: Linux lets a fatal
    -- SIGTERM kill it anyway.
    local real = package.searchpath("futures.core", package.cpath):gsub("core%.so$", "worker")
    local deaf
    setup(function() deaf = script("trap '' TERM\nexec " .. real) end)
    teardown(function() os.remove(deaf) end)

    it("kills it after a grace: its running and sent-ahead calls fail", function()
      clean_after(function()
        local g <close> = gate()
        local px = futures.ProcessPoolExecutor{ max_workers = 1, worker = deaf }
        local running = px:submit(gated, g.path)
        local ahead = px:submit(getpid)
        wait_started(g)
        px:terminate_workers()
        raises(Broken, running.result, running, LONG)
        raises(Broken, ahead.result, ahead, LONG)
        px:shutdown()
      end)
    end)

    it("does not hang interpreter exit", function()
      local prog = [[
        local futures = require "futures"
        local helpers = require "helpers"
        local px = futures.ProcessPoolExecutor{ max_workers = 1, worker = os.getenv("DEAF_WORKER") }
        local g = helpers.gate()
        local f = px:submit(function(p) require("helpers").await_gate(p, 60) end, g.path)
        helpers.wait_running(f)
        px:terminate_workers()
        print("terminated")
      ]]
      local cmd = ("%s DEAF_WORKER=%s timeout -s KILL 30 %s -e %s 2>&1"):format(helpers.child_env(),
        helpers.shell_quote(deaf), helpers.LUA, helpers.shell_quote(prog))
      local p = assert(io.popen(cmd, "r"))
      local out = p:read("a")
      local ok = p:close()
      assert.is_true(ok, out)
      contains(out, "terminated")
    end)
  end)

  it("max_tasks_per_child churn with a worker killed midway", function()
    clean_after(function()
      local px = futures.ProcessPoolExecutor{ max_workers = 2, max_tasks_per_child = 2 }
      local fs = {}
      for i = 1, 100 do fs[i] = px:submit(function(x) futures.sleep(0.001); return x end, i) end
      helpers.wait_until(function() return fs[20]:done() end, LONG, "some progress")
      local pids = px:_pids()
      if pids[1] then kill(9, pids[1], true) end   -- it may just have retired
      settled(fs, function(i) return i end)
      px:shutdown()
    end)
  end)
end)
