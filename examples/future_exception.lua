-- An error raised in a task is kept in its future: exception() returns it,
-- result() raises it again in the caller.
-- Python: PyMOTW-3 futures_future_exception.py
local futures = require "futures"

-- One write per line: print writes a line in pieces, so lines printed at the
-- same moment by several threads could mix (see README, "print in tasks").
local function say(fmt, ...)
  io.write(fmt:format(...) .. "\n")
end

local function task(n)
  say("%d: starting", n)
  error(("the value %d is no good"):format(n), 0)  -- level 0: no position
end

local ex <close> = futures.ThreadPoolExecutor(2)
say("main: starting")
local f = ex:submit(task, 5)

local err = f:exception()        -- waits, then returns the error value
say("main: error: %s", err)

local ok, e = pcall(f.result, f) -- result() re-raises (a copy of) the error,
if not ok then                   -- with the worker's traceback after a string
  say('main: saw error "%s" when accessing result', e:match("^[^\n]*"))
end

-- The worker's traceback is kept too, for debugging.
say("main: worker traceback:\n%s", f:traceback())

-- Any Lua value can be an error: a table crosses with its fields.
local g = ex:submit(function() error({ code = 42, why = "bad input" }) end)
local t = g:exception()
say("main: error table: code=%d why=%s", t.code, t.why)
