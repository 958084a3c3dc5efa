-- futures: Python's concurrent.futures for Lua 5.4.
-- The C core (futures.core) does the threads, processes, queues and value
-- transfer; this file is the Python-shaped surface on top of it.
local core = require "futures.core"

local futures = {
  _VERSION = core._VERSION,
  cpu_count = core.cpu_count,
  monotonic = core.monotonic,
  sleep = core.sleep,
  current_worker = core.current_worker,
  getpid = core.getpid,   -- not in Python's module: os.getpid has no Lua twin
  constant = core.constant,   -- t crosses to each worker once; t must not change after
}

---------------------------------------------------------------- errors
-- Every error the library raises is a table {message = ..., where = ...}
-- whose class is known by name, so that `is` still works on a copy that
-- crossed from a worker (a copied metatable is a different table with the
-- same __name).
local classes = {}

local getinfo = debug and debug.getinfo
local here = getinfo and getinfo(1, "S").source

-- "file:line:" of the user's code that led here: the first frame, walking
-- out, that is neither C nor this file and knows its line.  Errors made
-- while a C function (f:result...) runs get the line that called it.
local function user_where()
  if not getinfo then return nil end
  local level = 2
  while true do
    local info = getinfo(level, "Sl")
    if not info then return nil end
    if info.what ~= "C" and info.source ~= here and info.currentline > 0 then
      return info.short_src .. ":" .. info.currentline .. ":"
    end
    level = level + 1
  end
end

local function new_class(name, parent)
  local cls = { __name = "futures." .. name, name = name, parent = parent }
  cls.__index = cls
  cls.__tostring = function(e)
    local where = rawget(e, "where")
    local text = cls.__name .. ": " .. tostring(e.message)
    return type(where) == "string" and where .. " " .. text or text
  end
  function cls:is(v)
    local mt = getmetatable(v)
    local c = type(mt) == "table" and classes[rawget(mt, "__name")]
    while c do
      if c == self then return true end
      c = c.parent
    end
    return false
  end
  -- Like error(message), the error records where it was made; one made
  -- in a worker keeps that worker's position when it crosses.
  function cls:new(message)
    return setmetatable({ message = message, where = user_where() }, self)
  end
  setmetatable(cls, { __call = function(self, message) return self:new(message) end })
  classes[cls.__name] = cls
  futures[name] = cls
  return cls
end

local Error = new_class("Error")
new_class("CancelledError", Error)
new_class("TimeoutError", Error)
new_class("InvalidStateError", Error)
new_class("ShutdownError", Error)
new_class("TransferError", Error)
local Broken = new_class("BrokenExecutor", Error)
new_class("BrokenThreadPool", Broken)
new_class("BrokenProcessPool", Broken)

-- With this chunk's source, so that the C core skips the frames of this
-- file too when it puts the user's line on a Ctrl-C in a wait it runs
-- for map's loop, wait or as_completed.
core._set_error_ctor(function(name, message)
  return futures[name]:new(message)
end, here or "=futures")

---------------------------------------------------------------- helpers
local monotonic = core.monotonic
local select, type, pairs, ipairs, error = select, type, pairs, ipairs, error
local unpack = table.unpack
local Future = core.Future
local future_mt = getmetatable(Future())

local function is_future(v) return getmetatable(v) == future_mt end

-- Raises at the caller's line: the first frame outside this file, however
-- deep in its helpers the check was made.
local function arg_error(fname, n, msg)
  local level = 3
  if getinfo then
    level = 2
    while true do
      local info = getinfo(level, "S")
      if not info or info.source ~= here then break end
      level = level + 1
    end
  end
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level)
end

-- A value as a message shows it: 4, "4" (strings quoted, long ones cut),
-- true, NaN; other types by name (a userdata's __name: FILE*).
local function literal(v)
  local t = type(v)
  if t == "string" then
    if #v > 40 then v = v:sub(1, 37) .. "..." end
    return (("%q"):format(v):gsub("\\\n", "\\n"))
  elseif t == "number" then
    return v ~= v and "NaN" or tostring(v)
  elseif t == "boolean" or t == "nil" then
    return tostring(v)
  end
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or t
end

-- The value with its type: 4, string "4", boolean true, nil, table.
local function describe(v)
  local t = type(v)
  if t == "string" or t == "boolean" then return t .. " " .. literal(v) end
  return literal(v)
end

-- nil waits forever; a negative timeout counts as 0 (do not wait).
local function check_timeout(fname, n, t)
  if t == nil then return nil end
  if type(t) ~= "number" then
    arg_error(fname, n, "timeout must be a number or nil, got " .. describe(t))
  end
  if t ~= t then arg_error(fname, n, "timeout is NaN") end
  return t < 0 and 0 or t
end

-- The largest count the C core keeps (an int).
local INT_MAX = 2147483647

-- v as an integer >= 1 (2.0 is 2) and <= max (default math.maxinteger).
local function positive_integer(fname, n, what, v, max)
  max = max or math.maxinteger
  if type(v) == "number" then
    local i = math.tointeger(v)
    local big = i == nil and v >= 2^63 and v < math.huge   -- integral, past the integers
    if big or (i and i > max) then
      arg_error(fname, n, ("%s must be at most %d, got %s"):format(what, max, literal(i or v)))
    end
    if i and i >= 1 then return i end
  end
  arg_error(fname, n, ("%s must be a positive integer, got %s"):format(what, describe(v)))
end

-- Seconds as an option: a number > 0 (or >= 0 with zero_ok); nil stays nil.
local function seconds(fname, n, what, v, zero_ok)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < 0 or (v == 0 and not zero_ok) then
    arg_error(fname, n, ("%s must be a %s number of seconds, got %s")
      :format(what, zero_ok and "non-negative" or "positive", describe(v)))
  end
  return v
end

-- A sequence of futures, or a table whose keys are futures, as a list
-- without duplicates (in input order for a sequence).
local function future_list(fname, fs)
  if type(fs) ~= "table" then arg_error(fname, 1, "table of futures expected, got " .. describe(fs)) end
  local list, seen, n = {}, {}, 0
  local function add(f)
    if not is_future(f) then arg_error(fname, 1, "table of futures expected, found " .. describe(f) .. " in it") end
    if not seen[f] then seen[f] = true; n = n + 1; list[n] = f end
  end
  if rawget(fs, 1) ~= nil then
    for _, f in ipairs(fs) do add(f) end
  else
    for f in pairs(fs) do add(f) end
  end
  return list
end

---------------------------------------------------------------- executors
-- 'name' for a string key, [1] for others.
local function option_name(k)
  return type(k) == "string" and ("'%s'"):format(k) or "[" .. literal(k) .. "]"
end

local function parse_options(fname, arg, defaults, allowed)
  local opts = {}
  if type(arg) == "table" then
    for k, v in pairs(arg) do
      if not allowed[k] then arg_error(fname, 1, "unknown option " .. option_name(k)) end
      opts[k] = v
    end
  elseif arg ~= nil then
    opts.max_workers = arg
  end
  if opts.max_workers == nil then opts.max_workers = defaults.max_workers end
  -- Workers start as work comes, so a large max_workers costs nothing
  -- until used; the core counts them in an int.
  opts.max_workers = positive_integer(fname, 1, "max_workers", opts.max_workers, INT_MAX)
  if opts.initializer ~= nil and type(opts.initializer) ~= "function"
     and not (getmetatable(opts.initializer) or {}).__call then
    arg_error(fname, 1, "initializer must be callable, got " .. describe(opts.initializer))
  end
  if opts.initargs ~= nil and type(opts.initargs) ~= "table" then
    arg_error(fname, 1, "initargs must be a table, got " .. describe(opts.initargs))
  end
  -- math.huge: no limit, as nil.
  opts.call_timeout = seconds(fname, 1, "call_timeout", opts.call_timeout)
  if opts.call_timeout == math.huge then opts.call_timeout = nil end
  return opts
end

function futures.ThreadPoolExecutor(arg)
  local opts = parse_options("ThreadPoolExecutor", arg,
    { max_workers = math.min(32, core.cpu_count() + 4) },
    { max_workers = true, initializer = true, initargs = true, thread_name_prefix = true,
      call_timeout = true })
  if opts.thread_name_prefix ~= nil and type(opts.thread_name_prefix) ~= "string" then
    arg_error("ThreadPoolExecutor", 1, "thread_name_prefix must be a string, got "
      .. describe(opts.thread_name_prefix))
  end
  -- An empty prefix means the default one, as in Python.
  return core.ThreadPoolExecutor(opts.max_workers, opts.initializer, opts.initargs,
    opts.thread_name_prefix ~= "" and opts.thread_name_prefix or nil, nil, opts.call_timeout)
end

-- An iterable is a sequence table or an iterator function.  An empty
-- table is an empty sequence; a table with entries but no [1] is none.
local function is_sequence(t) return t[1] ~= nil or next(t) == nil end
local function is_iterable(v)
  return type(v) == "function" or type(v) == "table" and is_sequence(v)
end

-- The iterators of pairs, ipairs and utf8.codes: map calls an iterator
-- with no arguments, and these need their state.
local needs_state = { [next] = true, [ipairs({})] = true }
if utf8 then needs_state[utf8.codes("")] = true; needs_state[utf8.codes("", true)] = true end

-- "(a = 1 ...)": one entry of a table, to show which table it was.
local function sample(t)
  local k, v = next(t)
  local key = type(k) == "string" and k:find("^[%a_][%w_]*$") and k or "[" .. literal(k) .. "]"
  return ("(%s = %s%s)"):format(key, literal(v), next(t, k) ~= nil and " ..." or "")
end

-- The k-th iterable of ex:map and the argument after it (if any): an
-- iterator function followed by a value that is not an iterable is a
-- generic-for triple passed as it is, e.g. an unparenthesized io.lines(p).
local function iterator_of(fname, n, it, has_next, after)
  if type(it) == "table" then
    if not is_sequence(it) then
      arg_error(fname, n, "sequence expected, got a table with no [1] " .. sample(it))
    end
    local i = 0
    return function() i = i + 1; return it[i] end
  elseif type(it) == "function" then
    if needs_state[it] then
      arg_error(fname, n, "an iterator that needs its state (from pairs, ipairs or utf8.codes): "
        .. "map calls it with no arguments; pass a sequence table instead")
    end
    if has_next and not is_iterable(after) then
      arg_error(fname, n, "an iterator function followed by its state: wrap the call in "
        .. "parentheses, as in ex:map(f, (io.lines(path)))")
    end
    return it
  end
  arg_error(fname, n, "iterable (table or function) expected, got " .. describe(it))
end

local map_options = { timeout = true, chunksize = true, buffersize = true }

-- ex:map(fn, iterable, ... [, opts]) -> for i, ... in ex:map(...) do
local function map(self, fn, ...)
  local nit = select("#", ...)
  local opts = {}
  local last = nit >= 2 and select(nit, ...)
  if type(last) == "table" and rawget(last, 1) == nil and next(last) ~= nil
     and not is_future(last) then
    for k in pairs(last) do
      if not map_options[k] then arg_error("map", nit + 1, "unknown option " .. option_name(k)) end
    end
    opts, nit = last, nit - 1
  end
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    arg_error("map", 1, "callable expected, got " .. describe(fn))
  end
  if nit == 0 then arg_error("map", 2, "iterable expected") end
  local timeout = check_timeout("map", nit + 2, opts.timeout)
  local buffersize = opts.buffersize and positive_integer("map", nit + 2, "buffersize", opts.buffersize)
  local chunksize = opts.chunksize and positive_integer("map", nit + 2, "chunksize", opts.chunksize) or 1
  local iters = {}
  for k = 1, nit do
    local it, after = select(k, ...)
    iters[k] = iterator_of("map", k + 1, it, k < nit, after)
  end
  local deadline = timeout and monotonic() + timeout
  local submit = self.submit
  local batch = self._map_batch   -- processes: several calls in one message
  if chunksize < 2 or not batch then batch = nil end

  -- Calls are numbered 1..; futs[i] holds the future of call i, or for a
  -- chunk, {future, cursor}: the chunk's results are one flat array, read
  -- in call order (see run_chunk), so no table is made per call.
  local futs, nsub, exhausted = {}, 0, false
  -- Reads the next call's arguments into t[base + 1 .. base + nit].
  local function read_args(t, base)
    for k = 1, nit do
      local v = iters[k]()
      if v == nil then exhausted = true; return false end
      t[base + k] = v
    end
    return true
  end
  local first = iters[1]
  local function submit_more()
    if exhausted then return end
    if batch then
      local args, n = {}, 0
      if nit == 1 then   -- the common case, without a call per argument
        while n < chunksize do
          local v = first()
          if v == nil then exhausted = true; break end
          n = n + 1
          args[n] = v
        end
      else
        while n < chunksize and read_args(args, n * nit) do n = n + 1 end
      end
      if n == 0 then return end
      local chunk = { batch(self, fn, args, n, nit), 0 }
      for j = nsub + 1, nsub + n do futs[j] = chunk end
      nsub = nsub + n
    elseif nit == 1 then
      local v = first()
      if v == nil then exhausted = true; return end
      nsub = nsub + 1
      futs[nsub] = submit(self, fn, v)
    else
      local a = {}
      if not read_args(a, 0) then return end
      nsub = nsub + 1
      futs[nsub] = submit(self, fn, unpack(a, 1, nit))
    end
  end
  if buffersize then
    while nsub < buffersize and not exhausted do submit_more() end
  else
    while not exhausted do submit_more() end
  end

  -- Call i's entry stays in futs until its outcome is taken, so that
  -- leaving the loop (a timeout, an error, break) cancels it too.  The
  -- buffer is refilled only once a result is taken: never more than
  -- buffersize calls in flight.
  local i = 0
  local function refill()
    if buffersize then
      while nsub - i < buffersize and not exhausted do submit_more() end
    end
  end
  local function taken(...)
    futs[i] = nil
    refill()
    return i, ...
  end
  local function time_left() return deadline and math.max(0, deadline - monotonic()) end
  local iter
  if batch then
    -- A chunk: ok, n, values... per call, one after the other; its
    -- outcome is fetched once, at its first call's turn.
    iter = function()
      i = i + 1
      if i > nsub then submit_more() end
      local entry = futs[i]
      if entry == nil then return nil end
      local res = entry[3]
      if not res then
        res = entry[1]:result(time_left())
        entry[3] = res
      end
      local c = entry[2]
      local ok, n = res[c + 1], res[c + 2]
      entry[2] = c + 2 + n
      if not ok then error(res[c + 3], 0) end
      futs[i] = nil
      refill()
      if n == 1 then return i, res[c + 3] end
      return i, unpack(res, c + 3, c + 2 + n)
    end
  else
    iter = function()
      i = i + 1
      if i > nsub then submit_more() end
      local entry = futs[i]
      if entry == nil then return nil end
      return taken(entry:result(time_left()))
    end
  end
  local closer = setmetatable({}, { __close = function()
    for j = i, nsub do
      local entry = futs[j]
      if entry then (batch and entry[1] or entry):cancel() end
    end
  end })
  return iter, nil, nil, closer
end

core.ThreadPoolExecutor_methods.map = map

---------------------------------------------------------------- functions
futures.Future = Future
futures.poll = core.poll
-- Coroutines whose waits suspend only themselves, and what a foreign
-- event loop needs to drive them (csrc/spawn.c).
futures.spawn = core.spawn
futures.Queue = core.Queue
futures.run = core.run
futures.fd = core.fd
futures.timeout = core.timeout
futures.FIRST_COMPLETED = core.FIRST_COMPLETED
futures.FIRST_EXCEPTION = core.FIRST_EXCEPTION
futures.ALL_COMPLETED = core.ALL_COMPLETED

local return_whens = {
  [core.FIRST_COMPLETED] = true, [core.FIRST_EXCEPTION] = true, [core.ALL_COMPLETED] = true,
}

-- wait's two sequences print as their futures: {<Future at 0x...>, ...}.
local future_list_mt = {
  __tostring = function(t)
    local parts = {}
    for i = 1, #t do parts[i] = tostring(t[i]) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end,
}
local core_wait = core.wait

-- futures.wait(fs [, timeout [, return_when]]) -> done, not_done
function futures.wait(fs, timeout, return_when)
  local list = future_list("wait", fs)
  timeout = check_timeout("wait", 2, timeout)
  return_when = return_when or core.ALL_COMPLETED
  if not return_whens[return_when] then
    arg_error("wait", 3, "return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED, got "
      .. describe(return_when))
  end
  local done, not_done = core_wait(list, timeout and monotonic() + timeout, return_when)
  return setmetatable(done, future_list_mt), setmetatable(not_done, future_list_mt)
end

-- for f in futures.as_completed(fs [, timeout]) do
function futures.as_completed(fs, timeout)
  local list = future_list("as_completed", fs)
  timeout = check_timeout("as_completed", 2, timeout)
  local deadline = timeout and monotonic() + timeout
  local w = core.waiter(list)
  local w_next = w.next
  return function()
    local i = w_next(w, deadline)
    return i and list[i]
  end, nil, nil, w
end

---------------------------------------------------------------- processes
function futures.ProcessPoolExecutor(arg)
  local opts = parse_options("ProcessPoolExecutor", arg,
    { max_workers = core.cpu_count() },
    { max_workers = true, initializer = true, initargs = true,
      max_tasks_per_child = true, worker = true, call_timeout = true, stop_grace = true })
  local mt = opts.max_tasks_per_child
  if mt ~= nil then mt = positive_integer("ProcessPoolExecutor", 1, "max_tasks_per_child", mt, INT_MAX) end
  if opts.worker ~= nil and type(opts.worker) ~= "string" then
    arg_error("ProcessPoolExecutor", 1, "worker must be the path of a worker program, got "
      .. describe(opts.worker))
  end
  -- How long a stopped call may keep its worker before the worker is
  -- killed and replaced (a call stuck in C code).
  local grace = seconds("ProcessPoolExecutor", 1, "stop_grace", opts.stop_grace, true) or 1
  if grace == math.huge then grace = 1e9 end
  return core.ProcessPoolExecutor(opts.max_workers, opts.initializer, opts.initargs,
    nil, mt, opts.call_timeout, grace, opts.worker)
end

-- Writes ok, the count of values and the values at out[pos + 1 ...];
-- returns the next position.
local function put_outcome(out, pos, ok, ...)
  local n = select("#", ...)
  out[pos + 1], out[pos + 2] = ok, n
  for k = 1, n do out[pos + 2 + k] = (select(k, ...)) end
  return pos + 2 + n
end

-- Runs a chunk of map calls in one task.  The arguments come flat (nargs
-- per call) and the outcomes go back flat, ok, n, values... per call, so
-- that an error surfaces at its own call's turn and no table is made per
-- call on either side.
local function run_chunk(fn, args, ncalls, nargs)
  local out, pos = {}, 0
  if nargs == 1 then
    for j = 1, ncalls do pos = put_outcome(out, pos, pcall(fn, args[j])) end
    return out
  end
  for j = 0, ncalls - 1 do
    local base = j * nargs
    pos = put_outcome(out, pos, pcall(fn, unpack(args, base + 1, base + nargs)))
  end
  return out
end

local process_methods = core.ProcessPoolExecutor_methods
process_methods.map = map
function process_methods._map_batch(self, fn, args, ncalls, nargs)
  return self:submit(run_chunk, fn, args, ncalls, nargs)
end

return futures
