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
