-- Shared helpers for the specs: waiting on events (never on time), a
-- cross-thread latch, captured errors, and child interpreters.
local futures = require "futures"

local helpers = {}

-- Generous: only a broken implementation ever waits this long.
helpers.LONG = 10

-- The interpreter for child processes: sanitizer builds run their own.
helpers.LUA = os.getenv("FUTURES_TEST_LUA") or "lua5.4"

-- Polls pred() until it is true; fails the spec after `timeout` seconds.
function helpers.wait_until(pred, timeout, what)
  local deadline = futures.monotonic() + (timeout or helpers.LONG)
  while not pred() do
    if futures.monotonic() > deadline then
      error("timed out waiting for " .. (what or "a condition"), 2)
    end
    futures.sleep(0.001)
  end
end

-- Waits until f is running in a worker (it must reach that state).
function helpers.wait_running(f)
  helpers.wait_until(function() return f:running() or f:done() end, nil, "a running future")
  assert(f:running(), "the future finished instead of staying running")
end

-- A latch that crosses threads (and processes): a file that a task polls
-- for.  g.path goes to the task, which calls helpers.await_gate(path)
-- (sent as a function: it is a plain Lua closure with module upvalues).
function helpers.gate()
  local path = os.tmpname()
  os.remove(path)
  local g = { path = path }
  function g.open()
    local fh = assert(io.open(path, "w"))
    fh:close()
  end
  function g.close() os.remove(path) end
  setmetatable(g, { __close = g.close })
  return g
end

-- Task side of a gate: blocks the worker until the gate opens (or gives up
-- after `timeout`, returning false, so a failing spec never hangs a pool).
function helpers.await_gate(path, timeout)
  local fut = require "futures"
  local deadline = fut.monotonic() + (timeout or 30)
  while true do
    local fh = io.open(path, "r")
    if fh then fh:close(); return true end
    if fut.monotonic() > deadline then return false end
    fut.sleep(0.001)
  end
end

-- An executor's counters, by name.
function helpers.stats(ex)
  local workers, idle, pending, started = ex:_stats()
  return { workers = workers, idle = idle, pending = pending, started = started }
end

-- pcall that expects a failure; returns the error value.
function helpers.error_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected an error")
  return e
end

-- Asserts that fn(...) raises an error of class cls (futures.TimeoutError...)
-- and returns it.
function helpers.raises(cls, fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected " .. cls.__name .. ", got no error")
  assert(cls:is(e), "expected " .. cls.__name .. ", got " .. tostring(e))
  return e
end

-- Asserts that fn(...) raises an argument error whose text contains each of
-- the given fragments.
function helpers.arg_error(fragments, fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected an argument error")
  assert(type(e) == "string", "expected a string error, got " .. tostring(e))
  assert(e:find("bad argument", 1, true), "not an argument error: " .. e)
  if type(fragments) == "string" then fragments = { fragments } end
  for _, frag in ipairs(fragments) do
    assert(e:find(frag, 1, true), ("%q does not mention %q"):format(e, frag))
  end
  return e
end

function helpers.contains(haystack, needle)
  assert(type(haystack) == "string", "not a string: " .. tostring(haystack))
  assert(haystack:find(needle, 1, true), ("%q does not contain %q"):format(haystack, needle))
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
helpers.shell_quote = shell_quote

-- The environment prefix that lets a child interpreter load the module
-- the way this one does.
function helpers.child_env()
  return ("LUA_PATH=%s LUA_CPATH=%s"):format(shell_quote(package.path), shell_quote(package.cpath))
end

-- Runs `lua5.4 [flags] -e script` (helpers.LUA) in a child; returns its stdout and stderr
-- (merged) and the exit status (true/false, as io.close gives it).
function helpers.run_lua(script, flags)
  local cmd = ("%s %s %s -e %s 2>&1"):format(helpers.child_env(), helpers.LUA, flags or "", shell_quote(script))
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, how, code = p:close()
  return out, ok, code, how
end

-- Submits fn(i) for i = 1..n to a process pool, stopping early if submit
-- raises BrokenProcessPool (the pool may break while we submit); returns
-- the futures it got (at least the first).
function helpers.submit_all(px, n, fn)
  local futures = require "futures"
  local fs = {}
  for i = 1, n do
    local ok, f = pcall(px.submit, px, fn, i)
    if not ok then
      assert(futures.BrokenProcessPool:is(f), tostring(f))
      assert(i > 1, "the first submit raised")
      break
    end
    fs[i] = f
  end
  return fs
end

-- The output of a shell command.
function helpers.sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out
end

-- The descriptors open in process pid, {[fd] = target}, without the
-- listing's own pipe.  That pipe would not always count the same: popen
-- closes its copy of the child's end only after the child has started, so
-- on a busy machine the listing can catch both ends.  Both ends name the
-- pipe the listing shell writes to, found by reading its own fd 1.  A
-- plain function of its argument, so a task can run it in a worker.
function helpers.fds(pid)
  local p = assert(io.popen(([[
    me=$(readlink /proc/$$/fd/1) && [ -n "$me" ] || exit 1
    ls -l /proc/%d/fd | grep -v -F "$me"]]):format(pid), "r"))
  local fds = {}
  for line in p:lines() do
    local fd, target = line:match("(%d+) %-> (.*)$")
    if fd then fds[tonumber(fd)] = target end
  end
  assert(p:close(), "cannot list the descriptors of " .. pid)
  return fds
end

-- How many pipes, sockets and event descriptors this process holds: what
-- the library opens.  Files are left out: a sanitizer's runtime opens and
-- closes some of its own (/proc/self/...) at any moment.
function helpers.fd_count()
  local n = 0
  for _, target in pairs(helpers.fds(require("futures").getpid())) do
    if target:find("^pipe:") or target:find("^socket:") or target:find("^anon_inode:") then n = n + 1 end
  end
  return n
end

-- Asserts that 8 results of fn(size, k) that nobody reads go with their
-- futures: the heap is back to what it was once they are collected.
function helpers.unread_results_freed(ex, fn, size)
  local fs = {}
  for k = 1, 8 do fs[k] = ex:submit(fn, size, k) end
  require("futures").wait(fs, helpers.LONG)
  local heavy = collectgarbage("count")
  fs = nil
  collectgarbage()
  collectgarbage()
  local after = collectgarbage("count")
  assert(after < heavy + 100, ("%.0f KB before, %.0f KB after"):format(heavy, after))
end

return helpers
