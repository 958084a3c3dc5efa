-- The workloads of issue 7 for this library, one function per workload,
-- each the same steps as its twin in bench/py_bench.py.  Every function
-- returns {metric = {samples...}} (seconds unless the metric says
-- otherwise); bench/run.lua takes the medians.
local futures = require "futures"
local C = require "common"

local clock = futures.monotonic
local inc, build, is_prime = C.inc, C.build, C.is_prime

local W = {}

local function nap(s) futures.sleep(s) return s end

function W.executor(kind)
  if kind == "thread" then return futures.ThreadPoolExecutor(C.WORKERS) end
  return futures.ProcessPoolExecutor(C.WORKERS)
end

-- Starts both workers before anything is timed.
function W.warm(ex)
  for _ in ex:map(nap, { 0.02, 0.02 }) do end
end

local function fresh()
  collectgarbage()
  collectgarbage()
end

-- W1: n tiny tasks submitted, then collected; and through map.  Round 0
-- is not timed: it grows the heap to its working size, as in W3.
function W.w1(kind, n, reps)
  local ex <close> = W.executor(kind)
  W.warm(ex)
  local submit, map = {}, {}
  for r = 0, reps do
    fresh()
    local t0 = clock()
    local fs = {}
    for i = 1, n do fs[i] = ex:submit(inc, i) end
    for i = 1, n do fs[i]:result() end
    if r > 0 then submit[r] = (clock() - t0) / n end
  end
  local items = {}
  for i = 1, n do items[i] = i end
  for r = 0, reps do
    fresh()
    local t0 = clock()
    for _ in ex:map(inc, items, { chunksize = 500 }) do end
    if r > 0 then map[r] = (clock() - t0) / n end
  end
  return { submit = submit, map = map }
end

-- W2: the primes list twice, in the pool (map) and in this state alone.
local function prime_work()
  local work = {}
  for k = 1, 2 do
    for _, p in ipairs(C.PRIMES) do work[#work + 1] = p end
  end
  return work
end

-- name: what the samples are called (two of these run at once, see
-- bench/run.lua, tell theirs apart by it).
function W.w2_seq(reps, name)
  local work, seq = prime_work(), {}
  for r = 1, reps do
    local t0 = clock()
    for _, p in ipairs(work) do is_prime(p) end
    seq[r] = clock() - t0
  end
  return { [name or "seq"] = seq }
end

function W.w2(kind, reps)
  local work, pool = prime_work(), {}
  local ex <close> = W.executor(kind)
  W.warm(ex)
  for r = 1, reps do
    local t0 = clock()
    for _ in ex:map(is_prime, work) do end
    pool[r] = clock() - t0
  end
  -- How many of the workers were busy with the calls themselves, on
  -- average, from the map call to its last result: what the pool costs,
  -- apart from the pace the machine's cores keep when both run.
  local busy = {}
  for r = 1, reps do
    local t0, sum = clock(), 0
    for _, took in ex:map(C.timed_is_prime, work) do sum = sum + took end
    busy[r] = sum / (clock() - t0)
  end
  return { pool = pool, busy = busy }
end

-- W3: tasks returning a table of n floats built in the worker; and the
-- same tables built by this state alone.  Round 0 is not timed: it sizes
-- the heap, so that every timed round measures the steady state.
function W.w3_seq(tasks, n, reps)
  local seq = {}
  for r = 0, reps do
    fresh()
    local t0 = clock()
    local out = {}   -- kept, as the pool's futures keep theirs
    for i = 1, tasks do out[i] = build(n) end
    if r > 0 then seq[r] = clock() - t0 end
  end
  return { seq = seq }
end

function W.w3(kind, tasks, n, reps)
  local pool = {}
  local ex <close> = W.executor(kind)
  W.warm(ex)
  for r = 0, reps do
    fresh()
    local t0 = clock()
    local fs = {}
    for i = 1, tasks do fs[i] = ex:submit(build, n) end
    for i = 1, tasks do assert(#fs[i]:result() == n) end
    if r > 0 then pool[r] = clock() - t0 end
  end
  return { pool = pool }
end

-- W4: pool creation to first result, then shutdown(true).
function W.w4(kind, reps)
  local start, stop = {}, {}
  for r = 1, reps do
    fresh()
    local t0 = clock()
    local ex = W.executor(kind)
    ex:submit(inc, 1):result()
    local t1 = clock()
    ex:shutdown(true)
    local t2 = clock()
    start[r], stop[r] = t1 - t0, t2 - t1
  end
  return { startup = start, shutdown = stop }
end

-- W5: n tiny tasks submitted, then all awaited with wait / as_completed;
-- time per future from the first submit to the end of the wait.
function W.w5(kind, n, reps)
  local ex <close> = W.executor(kind)
  W.warm(ex)
  local res = { wait = {}, as_completed = {} }
  for r = 1, reps do
    fresh()
    local t0 = clock()
    local fs = {}
    for i = 1, n do fs[i] = ex:submit(inc, i) end
    local done = futures.wait(fs)
    res.wait[r] = (clock() - t0) / n
    assert(#done == n)
  end
  for r = 1, reps do
    fresh()
    local t0 = clock()
    local fs = {}
    for i = 1, n do fs[i] = ex:submit(inc, i) end
    local k = 0
    for _ in futures.as_completed(fs) do k = k + 1 end
    res.as_completed[r] = (clock() - t0) / n
    assert(k == n)
  end
  return res
end

-- W6 (run in a child of its own, see bench/child.lua): peak RSS while n
-- tiny tasks are submitted, held and collected (this process's VmHWM plus
-- that of its worker processes, if any).
function W.w6(kind, n)
  local base = C.status_kb("VmRSS")
  local t0 = clock()
  local peak, kids = nil, 0
  do
    local ex <close> = W.executor(kind)
    local fs = {}
    for i = 1, n do fs[i] = ex:submit(inc, i) end
    for i = 1, n do fs[i]:result() end
    peak = C.status_kb("VmHWM")
    for _, pid in ipairs(C.children()) do   -- worker processes' own peaks
      kids = kids + (C.status_kb("VmHWM", pid) or 0)
    end
  end
  return { base_kb = { base }, peak_kb = { peak + kids }, workers_peak_kb = { kids },
           seconds = { clock() - t0 } }
end

-- RSS of an idle pool whose workers have all started: this process's
-- growth, and the worker processes' own RSS.
function W.idle(kind)
  fresh()
  local base = C.status_kb("VmRSS")
  local ex <close> = W.executor(kind)
  W.warm(ex)
  futures.sleep(0.05)
  fresh()
  local own = C.status_kb("VmRSS") - base
  local kids, sum = C.children(), 0
  local counted = 0
  for _, pid in ipairs(kids) do
    local kb = C.status_kb("VmRSS", pid)
    if kb then sum, counted = sum + kb, counted + 1 end
  end
  return { workers = { C.WORKERS }, self_kb = { own }, children_kb = { sum },
           children = { counted } }
end

-- W7: mixed durations on a fresh pool of 2 (its start is timed): one
-- 0.6 s call, then ten 0.05 s calls; when the last short call and when
-- every call is done.
function W.w7(kind, reps)
  local makespan, last_short = {}, {}
  for r = 1, reps do
    local ex <close> = W.executor(kind)
    local t0 = clock()
    local long = ex:submit(nap, 0.6)
    local shorts = {}
    for i = 1, 10 do shorts[i] = ex:submit(nap, 0.05) end
    futures.wait(shorts)
    last_short[r] = clock() - t0
    long:result()
    makespan[r] = clock() - t0
  end
  return { makespan = makespan, last_short = last_short }
end

-- C1: n coroutines, each submitting one tiny call and awaiting it (its
-- f:result() suspends only the coroutine); and n coroutines that suspend
-- on one bare Future and are resumed once when it is set, with no pool:
-- the cost of spawning and resuming itself.
function W.c1(kind, n, reps)
  local ex <close> = W.executor(kind)
  W.warm(ex)
  local spawn, co, bare_cost = futures.spawn, {}, {}
  for r = 0, reps do
    fresh()
    local t0 = clock()
    local fs = {}
    for i = 1, n do fs[i] = spawn(function() return ex:submit(inc, i):result() end) end
    for i = 1, n do fs[i]:result() end
    if r > 0 then co[#co + 1] = (clock() - t0) / n end
    fs = {}
    fresh()
    t0 = clock()
    local bare = futures.Future()
    local function waiter() return bare:result() end
    for i = 1, n do fs[i] = spawn(waiter) end
    bare:set_result(1)   -- resumes every one of them, here
    if r > 0 then bare_cost[#bare_cost + 1] = (clock() - t0) / n end
    assert(fs[n]:done())
  end
  return { coroutines = co, spawn_resume = bare_cost }
end

-- Q1: a running call streams n integers to the caller through a queue of
-- maxsize 1000; seconds per value, from the submit to the last get.
local function stream(q, n) for i = 1, n do q:put(i) end end

function W.q1(kind, n, reps)
  local ex <close> = W.executor(kind)
  W.warm(ex)
  local per = {}
  for r = 0, reps do
    fresh()
    local q = futures.Queue(1000)
    local t0 = clock()
    local f = ex:submit(stream, q, n)
    for _ = 1, n do q:get() end
    f:result()
    if r > 0 then per[#per + 1] = (clock() - t0) / n end
  end
  return { values = per }
end

-- W1 forms: the W1 call with its function hoisted (W1 itself), written
-- inline (a new closure every call) and capturing one local number (a
-- new closure and upvalue every call), interleaved in one pool so that
-- each form's figure has a baseline from the same moments.
function W.w1_forms(kind, n, reps)
  local ex <close> = W.executor(kind)
  W.warm(ex)
  local forms = {
    hoisted = function(i) return ex:submit(inc, i) end,
    inline = function(i) return ex:submit(function(x) return x + 1 end, i) end,
    upvalue = function(i)
      local k = 1
      return ex:submit(function(x) return x + k end, i)
    end,
  }
  local out = { hoisted = {}, inline = {}, upvalue = {}, inline_x = {}, upvalue_x = {} }
  for r = 0, reps do
    local t = {}
    for _, name in ipairs { "hoisted", "inline", "upvalue" } do
      local submit = forms[name]
      fresh()
      local t0 = clock()
      local fs = {}
      for i = 1, n do fs[i] = submit(i) end
      for i = 1, n do fs[i]:result() end
      t[name] = (clock() - t0) / n
    end
    if r > 0 then
      for name, v in pairs(t) do out[name][r] = v end
      out.inline_x[r], out.upvalue_x[r] = t.inline / t.hoisted, t.upvalue / t.hoisted
    end
  end
  return out
end

-- Constant lookup: a table of 200,000 keys captured by every call of a
-- map of `calls` calls, marked with futures.constant; against two copies
-- of the table (a _roundtrip: what sending it to each of 2 workers once
-- costs) plus the calls run here.  A fresh pool each round: a worker that
-- holds the copy already would not count its crossing.
function W.constant(kind, calls, reps)
  local core = require "futures.core"
  local lookup, keys = {}, {}
  for i = 1, 200000 do lookup["k" .. i] = i end
  for i = 1, calls do keys[i] = "k" .. (i * 97 % 200000 + 1) end
  local out = { pool = {}, base = {}, x = {} }
  for r = 0, reps do
    local t = {}
    for k, v in pairs(lookup) do t[k] = v end
    futures.constant(t)
    local function score(k) return t[k] or 0 end
    fresh()
    local t0 = clock()
    core._roundtrip(lookup)
    local copies = clock() - t0
    t0 = clock()
    for _, k in ipairs(keys) do score(k) end
    local seq = clock() - t0
    local ex <close> = W.executor(kind)
    W.warm(ex)
    fresh()
    t0 = clock()
    for _ in ex:map(score, keys) do end
    local pool = clock() - t0
    if r > 0 then
      out.pool[r], out.base[r], out.x[r] = pool, copies + seq, pool / (copies + seq)
    end
  end
  return out
end

-- S1: from cancel(true) of a Lua busy loop to its worker being free, as
-- the caller sees it: the result of the next tiny call, on a pool of one
-- worker.  The loop is given a few ms to be well inside its worker first
-- (not timed).  Python cannot stop a running call: no twin.
local function spin() while true do end end

function W.s1(kind, reps)
  local ex <close> = kind == "thread" and futures.ThreadPoolExecutor(1) or futures.ProcessPoolExecutor(1)
  for _ in ex:map(nap, { 0.02 }) do end
  local free = {}
  for r = 0, reps do
    local f = ex:submit(spin)
    while not f:running() do futures.sleep(0.0005) end
    futures.sleep(0.005)
    local t0 = clock()
    f:cancel(true)
    ex:submit(inc, 1):result()
    if r > 0 then free[r] = clock() - t0 end
  end
  return { free = free }
end

return W
