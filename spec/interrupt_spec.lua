-- Ctrl-C (docs/reference.md: every blocking call can be interrupted in the standalone
-- interpreter).  Each case runs a child `lua5.4 -e script` that prints
-- "ready" and then blocks; the spec sends it SIGINT once it is ready and
-- checks that "interrupted!" comes out at once and the child exits soon
-- (its worker task ends shortly after: interpreter exit waits for queued
-- calls, by contract).
local futures = require "futures"
local helpers = require "helpers"

-- How long the blocked-on task keeps running: well past the SIGINT, so a
-- wait that ignores Ctrl-C shows up, and short enough for a quick exit.
local TASK = 1.5

local PRELUDE = [[
io.stdout:setvbuf("no")
local PID = io.open("/proc/self/stat"):read("n")
io.write(("pid %d\n"):format(PID))
local futures = require "futures"
local TASK = ]] .. TASK .. [[

local function long() futures.sleep(TASK); return "finished" end
local ex = futures.ThreadPoolExecutor(2)
]]

-- Runs the script in a child, interrupts it after it printed "ready";
-- returns the output, the seconds from the SIGINT to the "interrupted!"
-- line and to the child's exit.
local function interrupt(script)
  local cmd = ("export %s; exec %s -e %s 2>&1"):format(
    helpers.child_env(), helpers.LUA, helpers.shell_quote(PRELUDE .. script))
  local p = assert(io.popen(cmd, "r"))
  local lines = {}
  -- The child writes its own pid first: only it writes to the pipe, so no
  -- line can cut into another.
  local pid, ready, sent, seen
  for line in p:lines() do
    local id = not pid and line:match("^pid (%d+)$")
    if id then pid = id else lines[#lines + 1] = line end
    if line == "ready" then ready = true end
    if pid and ready and not sent then
      -- the script blocks right after printing "ready"
      assert(os.execute("kill -INT " .. pid))
      sent = futures.monotonic()
    end
    if line:find("interrupted!", 1, true) and not seen then seen = futures.monotonic() end
  end
  p:close()
  local exited = futures.monotonic()
  local out = table.concat(lines, "\n")
  assert(sent, "the child never got ready:\n" .. out)
  assert(seen, "no 'interrupted!' from the child:\n" .. out)
  return out, seen - sent, exited - sent
end

local function check(script)
  local out, to_message, to_exit = interrupt(script)
  helpers.contains(out, "interrupted!")
  assert.is_nil(out:find("not reached", 1, true), out)
  -- the message comes at once, well before the task ends
  assert.is_true(to_message < TASK * 0.66, ("'interrupted!' after %.2fs"):format(to_message))
  assert.is_true(to_exit < TASK + 1.5, ("exit after %.2fs"):format(to_exit))
  return out
end

describe("Ctrl-C #interrupt", function()
  it("interrupts f:result()", function()
    check([[
      local f = ex:submit(long)
      print("ready")
      f:result()
      print("not reached")
    ]])
  end)

  it("interrupts f:exception() with a timeout", function()
    check([[
      local f = ex:submit(long)
      print("ready")
      f:exception(60)
      print("not reached")
    ]])
  end)

  it("interrupts futures.wait", function()
    check([[
      local fs = { ex:submit(long), ex:submit(long) }
      print("ready")
      futures.wait(fs)
      print("not reached")
    ]])
  end)

  it("interrupts futures.as_completed", function()
    check([[
      local fs = { ex:submit(long), ex:submit(function() return 1 end) }
      fs[2]:result()
      print("ready")
      for f in futures.as_completed(fs) do
        if f == fs[1] then print("not reached") end
      end
      print("not reached")
    ]])
  end)

  it("interrupts map's iterator", function()
    check([[
      print("ready")
      for i, r in ex:map(function(x) futures.sleep(TASK); return x end, { 1, 2 }) do
        print("not reached")
      end
    ]])
  end)

  it("interrupts shutdown(true)", function()
    check([[
      ex:submit(long)
      print("ready")
      ex:shutdown(true)
      print("not reached")
    ]])
  end)

  it("interrupts futures.sleep, however long", function()
    check([[
      print("ready")
      futures.sleep(math.huge)
      print("not reached")
    ]])
  end)

  it("interrupts futures.run", function()
    check([[
      futures.run(function()
        print("ready")
        ex:submit(long):result()   -- suspends; run's wait is what Ctrl-C stops
        print("not reached")
      end)
      print("not reached")
    ]])
  end)

  it("interrupts a wait inside a coroutine", function()
    check([[
      local f = ex:submit(long)
      local co = coroutine.wrap(function() print("ready"); f:result(); print("not reached") end)
      co()
    ]])
  end)

  -- The Ctrl-C can land after the wait's call began but before the wait
  -- looked at the hook.  Inside a debug hook no hook fires, so a SIGINT
  -- sent from one arrives exactly there: the wait must still stop.
  it("interrupts a wait whose Ctrl-C came before it began", function()
    local out = helpers.run_lua(PRELUDE .. [[
      local f = ex:submit(long)
      debug.sethook(function()
        debug.sethook()
        io.popen("kill -INT " .. PID):close()  -- the SIGINT is in before close returns
        f:result()
        print("not reached")
      end, "l")
      local _ = 1
    ]])
    helpers.contains(out, "interrupted!")
    -- (a wait that missed it returns when the task ends, and goes on)
    assert.is_nil(out:find("not reached", 1, true), out)
  end)

  it("interrupts a wait while it runs a done-callback", function()
    local out = check([[
      local f = ex:submit(long)
      -- quick ends once its callbacks are in: they run inside f:result()
      local gate = require("helpers").gate()
      local quick = ex:submit(function(path) require("helpers").await_gate(path) end, gate.path)
      local later = false
      quick:add_done_callback(function()
        print("ready")
        local t = futures.monotonic()
        while futures.monotonic() - t < 5 do end  -- the Ctrl-C lands here
      end)
      quick:add_done_callback(function() later = true end)
      gate.open()
      local ok, e = pcall(f.result, f)
      gate.close()
      print("callbacks after the interrupted one ran:", later)
      error(e, 0)
    ]])
    helpers.contains(out, "callbacks after the interrupted one ran:\ttrue")
  end)

  it("is not fooled by a user's hook of the same shape as lua.c's", function()
    local f = futures.ThreadPoolExecutor(1):submit(function() return "done" end)
    debug.sethook(function() end, "crl", 1)
    local ok, r = pcall(f.result, f, helpers.LONG)
    debug.sethook()
    assert.is_true(ok, tostring(r))
    assert.equals("done", r)
  end)

  it("leaves the state usable when the interruption is caught", function()
    local out = check([[
      local f = ex:submit(long)
      -- "ready" from inside the pcall: a Ctrl-C right after it is caught
      local ok, e = pcall(function() print("ready"); return f:result() end)
      print("caught", ok, e)
      print("after", f:result())
    ]])
    helpers.contains(out, "caught\tfalse")
    helpers.contains(out, "after\tfinished")
  end)
end)
