-- The wording of the errors the front raises, and where they point: an
-- argument error names the caller's line, a library error records the
-- user's line in `where`, and a Ctrl-C in a loop of the front points at
-- the loop, never into lua/futures/init.lua.
local futures = require "futures"
local helpers = require "helpers"

local LONG = helpers.LONG
local gate, await_gate = helpers.gate, helpers.await_gate

local SRC = debug.getinfo(1, "S").short_src

-- fn() must raise; returns the error and "<this file>:<line>:" of the line
-- that called fails (write the closure on that same line).
local function fails(fn)
  local line = debug.getinfo(2, "l").currentline
  local ok, e = pcall(fn)
  assert(not ok, "expected an error")
  return e, ("%s:%d:"):format(SRC, line)
end

-- fn() must raise exactly `message` at the line that called says.
local function says(message, fn)
  local line = debug.getinfo(2, "l").currentline
  local ok, e = pcall(fn)
  assert(not ok, "expected an error")
  assert.equal(("%s:%d: %s"):format(SRC, line, message), e)
end

describe("max_workers", function()
  it("takes any positive integer up to 2147483647, and starts no worker for it", function()
    local ex <close> = futures.ThreadPoolExecutor(200000)
    assert.equal("<ThreadPoolExecutor max_workers=200000 workers=0 pending=0>", tostring(ex))
    assert.equal(42, ex:submit(function() return 42 end):result(LONG))
    local big <close> = futures.ThreadPoolExecutor{ max_workers = 2147483647 }
    assert.equal("<ThreadPoolExecutor max_workers=2147483647 workers=0 pending=0>", tostring(big))
    local float <close> = futures.ThreadPoolExecutor(2^31 - 1)
    assert.equal("<ThreadPoolExecutor max_workers=2147483647 workers=0 pending=0>", tostring(float))
    local px <close> = futures.ProcessPoolExecutor(200000)
    assert.equal("<ProcessPoolExecutor max_workers=200000 workers=0 pending=0>", tostring(px))
  end)

  it("past 2147483647 is an error that states the limit, at the caller's line", function()
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be at most 2147483647, got 4611686018427387904)", function() return (futures.ThreadPoolExecutor(2^62)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be at most 2147483647, got 2147483648)", function() return (futures.ThreadPoolExecutor{ max_workers = 2147483648 }) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be at most 2147483647, got 9223372036854775807)", function() return (futures.ThreadPoolExecutor(math.maxinteger)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be at most 2147483647, got 1e+300)", function() return (futures.ThreadPoolExecutor(1e300)) end)
    says("bad argument #1 to 'ProcessPoolExecutor' (max_workers must be at most 2147483647, got 4611686018427387904)", function() return (futures.ProcessPoolExecutor(2^62)) end)
    says("bad argument #1 to 'ProcessPoolExecutor' (max_tasks_per_child must be at most 2147483647, got 2147483648)", function() return (futures.ProcessPoolExecutor{ max_tasks_per_child = 2^31 }) end)
  end)
end)

describe("a bad value in a message", function()
  it("shows its type and value, strings quoted", function()
    says([[bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got string "4")]], function() return (futures.ThreadPoolExecutor("4")) end)
    says([[bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got string "4")]], function() return (futures.ThreadPoolExecutor{ max_workers = "4" }) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got 0)", function() return (futures.ThreadPoolExecutor(0)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got -3)", function() return (futures.ThreadPoolExecutor(-3)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got 2.5)", function() return (futures.ThreadPoolExecutor(2.5)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got inf)", function() return (futures.ThreadPoolExecutor(math.huge)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got NaN)", function() return (futures.ThreadPoolExecutor(0 / 0)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got boolean true)", function() return (futures.ThreadPoolExecutor(true)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got function)", function() return (futures.ThreadPoolExecutor(print)) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got futures.Future)", function() return (futures.ThreadPoolExecutor(futures.Future())) end)
    says([[bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got string "a long string that goes on and on a l...")]], function() return (futures.ThreadPoolExecutor(("a long string that goes on and on "):rep(3))) end)
    says([[bad argument #1 to 'ThreadPoolExecutor' (max_workers must be a positive integer, got string "two\nlines")]], function() return (futures.ThreadPoolExecutor("two\nlines")) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (initializer must be callable, got 42)", function() return (futures.ThreadPoolExecutor{ initializer = 42 }) end)
    says([[bad argument #1 to 'ThreadPoolExecutor' (initargs must be a table, got string "x")]], function() return (futures.ThreadPoolExecutor{ initializer = print, initargs = "x" }) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (thread_name_prefix must be a string, got 7)", function() return (futures.ThreadPoolExecutor{ thread_name_prefix = 7 }) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (unknown option 'max_worker')", function() return (futures.ThreadPoolExecutor{ max_worker = 2 }) end)
    says("bad argument #1 to 'ThreadPoolExecutor' (unknown option [1])", function() return (futures.ThreadPoolExecutor{ 4 }) end)
    says("bad argument #1 to 'ProcessPoolExecutor' (max_tasks_per_child must be a positive integer, got -1)", function() return (futures.ProcessPoolExecutor{ max_tasks_per_child = -1 }) end)
    says([[bad argument #1 to 'ProcessPoolExecutor' (max_tasks_per_child must be a positive integer, got string "9")]], function() return (futures.ProcessPoolExecutor{ max_tasks_per_child = "9" }) end)
    says("bad argument #1 to 'ProcessPoolExecutor' (worker must be the path of a worker program, got 42)", function() return (futures.ProcessPoolExecutor{ worker = 42 }) end)
  end)

  it("in map's options and in wait's arguments", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    says([[bad argument #3 to 'map' (buffersize must be a positive integer, got string "2")]], function() return (ex:map(print, { 1 }, { buffersize = "2" })) end)
    says("bad argument #3 to 'map' (buffersize must be a positive integer, got 0)", function() return (ex:map(print, { 1 }, { buffersize = 0 })) end)
    says("bad argument #3 to 'map' (chunksize must be a positive integer, got 1.5)", function() return (ex:map(print, { 1 }, { chunksize = 1.5 })) end)
    says("bad argument #3 to 'map' (unknown option 'timeuot')", function() return (ex:map(print, { 1 }, { timeuot = 1 })) end)
    says("bad argument #1 to 'map' (callable expected, got 42)", function() return (ex:map(42, { 1 })) end)
    says("bad argument #2 to 'map' (iterable (table or function) expected, got 42)", function() return (ex:map(print, 42)) end)
    says([[bad argument #3 to 'map' (iterable (table or function) expected, got string "x")]], function() return (ex:map(print, { 1 }, "x")) end)
    local f = futures.Future()
    says("bad argument #1 to 'wait' (table of futures expected, got nil)", function() return (futures.wait(nil)) end)
    says("bad argument #1 to 'wait' (table of futures expected, found 1 in it)", function() return (futures.wait({ 1 })) end)
    says([[bad argument #1 to 'as_completed' (table of futures expected, found string "x" in it)]], function() return (futures.as_completed({ f, "x" })) end)
    says([[bad argument #3 to 'wait' (return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED, got string "FIRST_COMPLETED")]], function() return (futures.wait({ f }, 0, "FIRST_COMPLETED")) end)
  end)
end)

describe("a timeout", function()
  local f = futures.Future()

  it("that is NaN says so, in wait, as_completed and map as in result", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    says("bad argument #1 to 'result' (timeout is NaN)", function() return (f:result(0 / 0)) end)
    says("bad argument #2 to 'wait' (timeout is NaN)", function() return (futures.wait({ f }, 0 / 0)) end)
    says("bad argument #2 to 'as_completed' (timeout is NaN)", function() return (futures.as_completed({ f }, 0 / 0)) end)
    says("bad argument #3 to 'map' (timeout is NaN)", function() return (ex:map(print, { 1 }, { timeout = 0 / 0 })) end)
    says("bad argument #4 to 'map' (timeout is NaN)", function() return (ex:map(print, { 1 }, { 2 }, { timeout = 0 / 0 })) end)
  end)

  it("that is a string names its type", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    says([[bad argument #2 to 'wait' (timeout must be a number or nil, got string "1")]], function() return (futures.wait({ f }, "1")) end)
    says([[bad argument #2 to 'as_completed' (timeout must be a number or nil, got string "1")]], function() return (futures.as_completed({ f }, "1")) end)
    says([[bad argument #3 to 'map' (timeout must be a number or nil, got string "1")]], function() return (ex:map(print, { 1 }, { timeout = "1" })) end)
    says("bad argument #2 to 'wait' (timeout must be a number or nil, got boolean false)", function() return (futures.wait({ f }, false)) end)
  end)
end)

describe("map's iterables", function()
  local ex
  setup(function() ex = futures.ThreadPoolExecutor(2) end)
  teardown(function() ex:shutdown() end)

  local function collect(...)
    local got = {}
    for i, v in ex:map(...) do got[i] = v end
    return got
  end
  local function id(...) return ... end

  it("refuse a table with no sequence part", function()
    says("bad argument #2 to 'map' (sequence expected, got a table with no [1] (a = 1))", function() return (ex:map(id, { a = 1 })) end)
    says([[bad argument #2 to 'map' (sequence expected, got a table with no [1] (["a b"] = "x"))]], function() return (ex:map(id, { ["a b"] = "x" })) end)
    says("bad argument #2 to 'map' (sequence expected, got a table with no [1] ([2] = true))", function() return (ex:map(id, { nil, true })) end)
    says("bad argument #3 to 'map' (sequence expected, got a table with no [1] (x = 1))", function() return (ex:map(id, { 1 }, { x = 1 }, { 2 })) end)
    local e, at = fails(function() return (ex:map(id, { a = 1, b = 2 })) end)
    assert.matches("^" .. at:gsub("%p", "%%%0") .. " bad argument #2 to 'map' %(sequence expected, got a table with no %[1%] %([ab] = [12] %.%.%.%)%)$", e)
  end)

  it("refuse an unparenthesized iterator call, pointing at the parentheses", function()
    local path = os.tmpname()
    local fh <close> = assert(io.open(path, "w"))
    fh:write("one\ntwo\n"); fh:flush()
    local paren = "an iterator function followed by its state: wrap the call in parentheses, as in ex:map(f, (io.lines(path)))"
    says("bad argument #2 to 'map' (" .. paren .. ")", function() return (ex:map(id, io.lines(path))) end)
    says("bad argument #3 to 'map' (" .. paren .. ")", function() return (ex:map(id, { 1 }, io.lines(path))) end)
    says("bad argument #2 to 'map' (" .. paren .. ")", function() return (ex:map(id, (io.lines(path)), 42)) end)
    says("bad argument #2 to 'map' (" .. paren .. ")", function() return (ex:map(id, id, { a = 1 }, { 1 })) end)
    -- parenthesized, it works
    assert.same({ "one", "two" }, collect(id, (io.lines(path))))
    os.remove(path)
  end)

  it("refuse the iterators of pairs, ipairs and utf8.codes, which need their state", function()
    local state = "an iterator that needs its state (from pairs, ipairs or utf8.codes): map calls it with no arguments; pass a sequence table instead"
    says("bad argument #2 to 'map' (" .. state .. ")", function() return (ex:map(id, pairs({ a = 1 }))) end)
    says("bad argument #2 to 'map' (" .. state .. ")", function() return (ex:map(id, pairs({ 1, 2 }))) end)
    says("bad argument #2 to 'map' (" .. state .. ")", function() return (ex:map(id, ipairs({ 1, 2 }))) end)
    says("bad argument #2 to 'map' (" .. state .. ")", function() return (ex:map(id, (pairs({ 1 })))) end)
    says("bad argument #2 to 'map' (" .. state .. ")", function() return (ex:map(id, utf8.codes("ab"))) end)
  end)

  it("still take a function with options, two sequences, two functions, an empty table", function()
    local function counter(n)
      local i = 0
      return function() i = i + 1; if i <= n then return i end end
    end
    assert.same({ 1, 2, 3 }, collect(id, counter(3), { timeout = LONG }))
    assert.same({ 4, 5 }, collect(math.max, { 1, 5 }, { 4, 2 }))
    assert.same({ 1, 2 }, collect(math.max, counter(2), counter(5)))
    assert.same({ 3, 4 }, collect(math.max, counter(2), { 3, 4, 5 }))
    assert.same({}, collect(math.max, counter(2), { 3 }, {}))
    assert.same({}, collect(id, {}))
    assert.same({}, collect(id, {}, {}))
    assert.same({ "a", "b" }, collect(id, (("a b"):gmatch("%a"))))
  end)
end)

describe("futures.wait's sequences", function()
  it("print as their futures", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local g <close> = gate()
    local a, b = ex:submit(function() return 1 end), ex:submit(function() return "x" end)
    a:result(LONG); b:result(LONG)
    local slow = ex:submit(await_gate, g.path)
    helpers.wait_running(slow)
    local done, not_done = futures.wait({ a, b, slow }, 0)
    assert.equal(("{%s, %s}"):format(tostring(a), tostring(b)), tostring(done))
    assert.matches("^{<Future at 0x%x+ state=finished returned number>, <Future at 0x%x+ state=finished returned string>}$", tostring(done))
    assert.matches("^{<Future at 0x%x+ state=running>}$", tostring(not_done))
    g.open()
    done, not_done = futures.wait({ slow }, LONG)
    assert.equal("{}", tostring(not_done))
    assert.equal(done[1], slow)
    assert.equal(1, #done)
    assert.is_nil(next(done, 1))   -- nothing but the sequence
  end)
end)

describe("a library error", function()
  it("records the user's line from a result timeout", function()
    local g <close> = gate()   -- closed after ex, which waits for the gate's task
    local ex <close> = futures.ThreadPoolExecutor(1)
    local f = ex:submit(await_gate, g.path)
    local e, at = fails(function() return (f:result(0)) end)
    assert.is_true(futures.TimeoutError:is(e))
    assert.equal(at, e.where)
    assert.equal("the future did not complete in time", e.message)
    assert.equal(at .. " futures.TimeoutError: the future did not complete in time", tostring(e))
    -- also through pcall straight on the method: the line of the pcall
    local line = debug.getinfo(1, "l").currentline; local ok, e2 = pcall(f.result, f, 0)
    assert.is_false(ok)
    assert.equal(("%s:%d:"):format(SRC, line), e2.where)
    g.open()
  end)

  it("records the line of the as_completed loop", function()
    local g <close> = gate()   -- closed after ex, which waits for the gate's task
    local ex <close> = futures.ThreadPoolExecutor(1)
    local f = ex:submit(await_gate, g.path)
    local e, at = fails(function() for _ in futures.as_completed({ f }, 0.01) do end end)
    assert.is_true(futures.TimeoutError:is(e))
    assert.equal(at .. " futures.TimeoutError: " .. e.message, tostring(e))
    g.open()
  end)

  it("records the line of the map loop", function()
    local g <close> = gate()   -- closed after ex, which waits for the gate's task
    local ex <close> = futures.ThreadPoolExecutor(1)
    local e, at = fails(function() for _ in ex:map(await_gate, { g.path }, { timeout = 0.01 }) do end end)
    assert.is_true(futures.TimeoutError:is(e))
    assert.equal(at, e.where)
    g.open()
  end)

  it("records the line of a submit after shutdown", function()
    local ex = futures.ThreadPoolExecutor(1)
    ex:shutdown()
    local e, at = fails(function() return (ex:submit(print)) end)
    assert.is_true(futures.ShutdownError:is(e))
    assert.equal(at .. " futures.ShutdownError: cannot schedule new futures after shutdown", tostring(e))
  end)

  it("records the line of the result of a cancelled future", function()
    local f = futures.Future()
    f:cancel()
    local e, at = fails(function() return (f:result()) end)
    assert.is_true(futures.CancelledError:is(e))
    assert.equal(at .. " futures.CancelledError: " .. e.message, tostring(e))
    assert.equal("futures.CancelledError", getmetatable(e).__name)
  end)

  it("made by the user records where it was made, like error()", function()
    local line = debug.getinfo(1, "l").currentline; local e = futures.TimeoutError("too slow")
    local where = ("%s:%d:"):format(SRC, line)
    assert.equal(where, e.where)
    assert.equal("too slow", e.message)
    assert.equal(where .. " futures.TimeoutError: too slow", tostring(e))
    line = debug.getinfo(1, "l").currentline; e = futures.Error:new("x")
    assert.equal(("%s:%d: futures.Error: x"):format(SRC, line), tostring(e))
    e.where = nil
    assert.equal("futures.Error: x", tostring(e))
  end)

  it("made in a worker keeps the worker's line when it crosses", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local function task() error(futures.ShutdownError("inside")) end
    local line = debug.getinfo(task, "S").linedefined
    local e = ex:submit(task):exception(LONG)
    assert.is_true(futures.ShutdownError:is(e))
    assert.equal(("%s:%d: futures.ShutdownError: inside"):format(SRC, line), tostring(e))
    -- raised again by result, it keeps it too
    local e2 = helpers.error_of(function() return (ex:submit(task):result(LONG)) end)
    assert.equal(("%s:%d:"):format(SRC, line), e2.where)
  end)
end)

-- A child interpreter that is interrupted once it printed "ready";
-- returns its output.  The task prints it, from a worker: by then the
-- main thread is in (or entering) the wait on the script's line 6.
local function interrupted(script)
  local prelude = [[
io.stdout:setvbuf("no")
io.write(("pid %d\n"):format(io.open("/proc/self/stat"):read("n")))
local futures = require "futures"
local ex = futures.ThreadPoolExecutor(2)
local function long() print("ready"); futures.sleep(1.5) end
]]
  local cmd = ("export %s; exec %s -e %s 2>&1"):format(
    helpers.child_env(), helpers.LUA, helpers.shell_quote(prelude .. script))
  local p = assert(io.popen(cmd, "r"))
  local lines, pid, sent = {}, nil, false
  for line in p:lines() do
    local id = not pid and line:match("^pid (%d+)$")
    if id then pid = id else lines[#lines + 1] = line end
    if pid and line == "ready" and not sent then
      assert(os.execute("kill -INT " .. pid))
      sent = true
    end
  end
  p:close()
  local out = table.concat(lines, "\n")
  assert(sent, "the child never got ready:\n" .. out)
  return out
end

describe("Ctrl-C in a loop of the front #interrupt", function()
  -- lua5.4 -e names its chunk "(command line)" (the sanitizer builds'
  -- interpreter a [string "..."]); the prelude takes lines 1-5, so the
  -- script's wait is on line 6.
  local function check(out, line)
    assert.truthy(out:find(("^lua[^\n]*: [^\n]*:%d: interrupted!"):format(line))
      or out:find(("\nlua[^\n]*: [^\n]*:%d: interrupted!"):format(line)), out)
    assert.is_nil(out:find("init.lua:%d+: interrupted"), out)
  end

  it("points at the map loop", function()
    check(interrupted([[
for _ in ex:map(function() long() end, { 1 }) do end
]]), 6)
  end)

  it("points at the as_completed loop", function()
    check(interrupted([[
for _ in futures.as_completed({ ex:submit(long) }) do end
]]), 6)
  end)

  it("points at the wait", function()
    check(interrupted([[
futures.wait({ ex:submit(long) })
]]), 6)
  end)
end)
