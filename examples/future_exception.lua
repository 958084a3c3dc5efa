-- An error raised in a task is kept in its future: exception() returns it,
-- result() raises it again in the caller.
-- Python: PyMOTW-3 futures_future_exception.py
local futures = require "futures"

local function task(n)
  print(("%d: starting"):format(n))
  error(("the value %d is no good"):format(n), 0)  -- level 0: no position
end

local ex <close> = futures.ThreadPoolExecutor(2)
print("main: starting")
local f = ex:submit(task, 5)

local err = f:exception()        -- waits, then returns the error value
print(("main: error: %s"):format(err))

local ok, e = pcall(f.result, f) -- result() re-raises (a copy of) the error
if not ok then
  print(('main: saw error "%s" when accessing result'):format(e))
end

-- The worker's traceback is kept too, for debugging.
print("main: worker traceback:\n" .. f:traceback())

-- Any Lua value can be an error: a table crosses with its fields.
local g = ex:submit(function() error({ code = 42, why = "bad input" }) end)
local t = g:exception()
print(("main: error table: code=%d why=%s"):format(t.code, t.why))
