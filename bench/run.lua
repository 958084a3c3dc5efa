-- `make bench`: the workloads of issue 7 for this library's thread and
-- process pools, for Python's concurrent.futures (bench/py_bench.py, run
-- as a child) and for luv's libuv thread pool (bench/luv_bench.lua, a
-- child with UV_THREADPOOL_SIZE=2) in the same run, plus the transfer
-- micro-benchmark (bench/transfer.lua).  Prints one table with the
-- targets of issues 3, 4, 5 and 7 and PASS/BELOW for each.
--
-- Every figure is a median of several runs (the count is in the notes),
-- timed with a monotonic clock (futures.monotonic, time.perf_counter,
-- uv.hrtime); every pool has 2 workers, all started before timing except
-- in W4 (startup) and W6 (memory).  Every workload runs in a fresh child
-- interpreter (bench/child.lua), as Python's do, so that none inherits the
-- heap another left behind.  Progress goes to stderr.
local dir = arg[0]:match("^(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local futures = require "futures"
local C = require "common"
local T = require "transfer"

local median, q = C.median, C.shell_quote

-- The interpreter running this script, for the Lua children.
local LUA = "lua5.4"
do
  local i = -1
  while arg[i] do LUA = arg[i]; i = i - 1 end
end

-- Repetitions.  W1-W4 run every contender in `rounds` rounds of children,
-- round-robin (see interleave below), each child timing `reps` runs; the
-- figure is the median of all samples.  W5 and W6: one child each; W5's
-- small sizes take milliseconds a run, so they get more runs.
local CFG = {
  -- W1: 3 timed runs a child (the first after start-up swings most on 2
  -- cores); Python's process pool, at 2.5 s a run, keeps one.
  w1 = { n = 20000, reps = 3, rounds = 5, py_rounds = { thread = 5, process = 3 },
         py_reps = { thread = 3, process = 1 } },
  w2 = { reps = 2, rounds = 5, py_rounds = 3 },
  w3 = { tasks = 200, n = 50000, reps = 1, rounds = 5, py_rounds = 5 },
  w4 = { reps = 10, rounds = 2 },
  w5 = { sizes = { 1000, 10000, 100000 }, reps = { 31, 11, 3 },
         py_reps = { thread = { 5, 3, 1 }, process = { 3, 1, 0 } } },
  w6 = { n = 1000000, python = { thread = true, process = false } },
  w7 = { reps = 3, rounds = 3, py_rounds = 3 },
  c1 = { n = 10000, reps = 3, rounds = 3, py_rounds = 2 },
  q1 = { n = { thread = 200000, process = 200000 }, py_n = { thread = 100000, process = 5000 },
         reps = 3, rounds = 3, py_rounds = 2 },
  s1 = { reps = 50 },
}
-- BENCH_QUICK=1: one run of everything at small sizes, to try the script
-- out; its figures mean nothing.
local QUICK = os.getenv("BENCH_QUICK") == "1"
if QUICK then
  CFG.w1.n, CFG.w1.rounds, CFG.w1.py_rounds = 2000, 1, { thread = 1, process = 1 }
  CFG.w1.reps, CFG.w1.py_reps = 1, { thread = 1, process = 1 }
  CFG.w2.rounds, CFG.w2.py_rounds = 1, 1
  CFG.w3.tasks, CFG.w3.rounds, CFG.w3.py_rounds = 20, 1, 1
  CFG.w4.reps, CFG.w4.rounds = 2, 1
  CFG.w5.sizes, CFG.w5.reps = { 100, 1000, 2000 }, { 1, 1, 1 }
  CFG.w5.py_reps = { thread = { 1, 1, 1 }, process = { 1, 1, 0 } }
  CFG.w6.n = 20000
  CFG.w7.reps, CFG.w7.rounds, CFG.w7.py_rounds = 1, 1, 1
  CFG.c1.n, CFG.c1.reps, CFG.c1.rounds, CFG.c1.py_rounds = 1000, 1, 1, 1
  CFG.q1.n, CFG.q1.py_n = { thread = 20000, process = 20000 }, { thread = 10000, process = 1000 }
  CFG.q1.reps, CFG.q1.rounds, CFG.q1.py_rounds = 1, 1, 1
  CFG.s1.reps = 5
end
-- BENCH_ONLY=W7 (a comma-separated list of W1, W1f, C, W2..W7, C1, Q1, S1, T): only those
-- workloads, to look at one of them.
local ONLY = os.getenv("BENCH_ONLY")
local function want(name)
  return not ONLY or (("," .. ONLY .. ","):find("," .. name .. ",", 1, true) ~= nil)
end
local KINDS = { "thread", "process" }
local POOL = { thread = "threads", process = "processes" }

local HAS_PROC = futures.ProcessPoolExecutor ~= nil
local NOT_BUILT = "n/a (not built)"

local function progress(...)
  io.stderr:write("bench: ", string.format(...), "\n")
  io.stderr:flush()
end

local function sh_ok(cmd) return os.execute(cmd .. " >/dev/null 2>&1") == true end

local HAS_PY = sh_ok("python3 -c 'import concurrent.futures'")
local HAS_LUV = sh_ok(q(LUA) .. " -e 'require \"luv\"'")
local NO_PY = "n/a (no python3)"
local NO_LUV = "n/a (no luv)"

-- A cell is a number (a figure) or a string (why there is none).
local function py(...)
  if not HAS_PY then return nil, NO_PY end
  local args = { ... }
  for i, a in ipairs(args) do args[i] = q(a) end
  local res, err = C.collect("python3 " .. q(dir .. "py_bench.py") .. " " .. table.concat(args, " "))
  if err then progress("python %s: %s", table.concat(args, " "), err) end
  return res, err and "error (see stderr)"
end

local function luv(...)
  if not HAS_LUV then return nil, NO_LUV end
  local args = { ... }
  for i, a in ipairs(args) do args[i] = q(a) end
  local res, err = C.collect("UV_THREADPOOL_SIZE=2 " .. q(LUA) .. " " .. q(dir .. "luv_bench.lua")
    .. " " .. table.concat(args, " "))
  if err then progress("luv %s: %s", table.concat(args, " "), err) end
  return res, err and "error (see stderr)"
end

-- A workload of bench/workloads.lua in a child interpreter of its own
-- (bench/child.lua), as Python's run.
local function lua_child(...)
  local args = { ... }
  for i, a in ipairs(args) do args[i] = q(a) end
  local res, err = C.collect(q(LUA) .. " " .. q(dir .. "child.lua") .. " " .. table.concat(args, " "))
  if err then progress("child.lua %s: %s", table.concat(args, " "), err) end
  return res, err and "error (see stderr)"
end

-- Two children of w2_seq at the same time: what the machine gives two
-- busy threads that share nothing, the most a pool of 2 can reach.  The
-- sample is the slower of the pair.
local function lua_pair(reps)
  local function child(name)
    return ("%s %s w2_seq %d %s"):format(q(LUA), q(dir .. "child.lua"), reps, name)
  end
  local res, err = C.collect(("{ %s & %s; wait; }"):format(child("a"), child("b")))
  if err or not (res.a and res.b) then
    progress("two w2_seq children: %s", err or "no samples")
    return nil, "error (see stderr)"
  end
  local pair = {}
  for r = 1, reps do pair[r] = math.max(res.a[r], res.b[r]) end
  return { pair = pair }
end

-- This library's workload `name` for a pool kind; nil and a reason if the
-- pool is not built or the workload failed.
local function ours(kind, name, ...)
  if kind == "process" and not HAS_PROC then return nil, NOT_BUILT end
  return lua_child(name, kind, ...)
end

-- Runs jobs[i].run() jobs[i].rounds times each, round-robin, so that a
-- slow spell of the machine (a shared VM has them, seconds long) falls on
-- every contender alike instead of on whoever ran then.  Returns, per job,
-- {res, why}: the samples of all its rounds merged, or why there are none.
local function interleave(jobs)
  local out, most = {}, 0
  for i, job in ipairs(jobs) do
    out[i] = { {} }
    if job.rounds > most then most = job.rounds end
  end
  for round = 1, most do
    for i, job in ipairs(jobs) do
      if round <= job.rounds and out[i][1] then
        if job.label then progress("%s, round %d/%d", job.label, round, job.rounds) end
        local res, why = job.run()
        if not res or why then
          out[i] = { nil, why or "error (see stderr)" }
        else
          for name, samples in pairs(res) do
            local all = out[i][1][name] or {}
            for _, v in ipairs(samples) do all[#all + 1] = v end
            out[i][1][name] = all
          end
        end
      end
    end
  end
  return out
end

-- The median of res[name], scaled; or the reason there is none.
local function fig(res, why, name, scale)
  if not res then return why end
  local m = median(res[name] or {})
  if not m then return why or "missing" end
  return m * (scale or 1)
end

---------------------------------------------------------------- the table
local rows = {}
local notes = {}

-- row{label, pool, unit, fut, py, luv, better = "low"|"high"|nil,
--     target = {text, check = function(row) -> ok, why}}
local sections, current = {}, nil   -- see section() below
local BUSY_LIMIT = 0.15   -- cores used by others that flag a workload's figures
local function row(r) rows[#rows + 1] = r; r.section = current; return r end

local function num(v) return type(v) == "number" end

local function ratio(r)
  if not r.better or not num(r.fut) or not num(r.py) or r.py == 0 or r.fut == 0 then return nil end
  return r.better == "low" and r.py / r.fut or r.fut / r.py
end

local function min_ratio(x)
  return { text = (">= %gx Py"):format(x), check = function(r)
    local v = ratio(r)
    if not v then return nil end
    return v >= x, ("%.2fx < %gx"):format(v, x)
  end }
end

local function at_least(x, unit)
  return { text = (">= %g%s"):format(x, unit or ""), check = function(r)
    if not num(r.fut) then return nil end
    return r.fut >= x, ("%.3g < %g"):format(r.fut, x)
  end }
end

local function at_most(x, unit)
  return { text = ("<= %g%s"):format(x, unit or ""), check = function(r)
    if not num(r.fut) then return nil end
    return r.fut <= x, ("%.3g > %g"):format(r.fut, x)
  end }
end

local function no_slower_than_luv()
  return { text = "<= luv", check = function(r)
    if not num(r.fut) or not num(r.luv) then return nil end
    return r.fut <= r.luv, ("%.3g > luv %.3g"):format(r.fut, r.luv)
  end }
end

-- Cost per completion stays flat: at most `factor` times the 1,000 figure.
local function flat(base_row, factor, n)
  return { text = ("<= %gx n=%d"):format(factor, n), check = function(r)
    if not num(r.fut) or not num(base_row.fut) then return nil end
    local v = r.fut / base_row.fut
    return v <= factor, ("%.2fx of n=%d"):format(v, n)
  end }
end

local function fmt_num(v)
  if not num(v) then return v or "" end
  if v ~= v then return "nan" end
  local a = math.abs(v)
  if a >= 1000 then return ("%.0f"):format(v) end
  if a >= 100 then return ("%.1f"):format(v) end
  if a >= 10 then return ("%.2f"):format(v) end
  if a >= 1 then return ("%.3f"):format(v) end
  return ("%.3g"):format(v)
end

local function status(r)
  if not r.targets or #r.targets == 0 then return "", "" end
  local texts, fails, unknown = {}, {}, false
  for _, t in ipairs(r.targets) do
    texts[#texts + 1] = t.text
    local ok, why = t.check(r)
    if ok == nil then unknown = true
    elseif not ok then fails[#fails + 1] = why end
  end
  local st
  if #fails > 0 then st = "BELOW (" .. table.concat(fails, "; ") .. ")"
  elseif unknown then st = "?"
  else st = "PASS" end
  return table.concat(texts, ", "), st
end

local function print_table()
  local head = { "workload", "pool", "futures", "Python", "vs Py", "luv", "target", "status" }
  local cells = { head }
  for _, r in ipairs(rows) do
    local v = ratio(r)
    local tgt, st = status(r)
    local suffix = r.suffix or ""
    local function cell(x) return num(x) and fmt_num(x) .. suffix or fmt_num(x) end
    local sec = r.section and sections[r.section]
    local busy = sec and sec.others and sec.others > BUSY_LIMIT
    cells[#cells + 1] = { r.label .. (busy and " *" or ""), r.pool or "", cell(r.fut), cell(r.py),
      v and ("%.2fx"):format(v) or "", cell(r.luv), tgt, st }
  end
  local width = {}
  for _, line in ipairs(cells) do
    for i, c in ipairs(line) do width[i] = math.max(width[i] or 0, utf8.len(c) or #c) end
  end
  local function out(line)
    local parts = {}
    for i, c in ipairs(line) do
      parts[i] = i == #line and c or c .. string.rep(" ", width[i] - (utf8.len(c) or #c))
    end
    print((table.concat(parts, "  "):gsub("%s+$", "")))
  end
  out(head)
  local rule = {}
  for i = 1, #head do rule[i] = string.rep("-", width[i]) end
  out(rule)
  local last
  for i = 2, #cells do
    local w = rows[i - 1].label:match("^(%w+)")
    if last and w ~= last then print() end
    last = w
    out(cells[i])
  end
end

---------------------------------------------------------------- machine
local function read_file(path)
  local fh = io.open(path)
  if not fh then return nil end
  local s = fh:read("a")
  fh:close()
  return s
end

local function capture(cmd)
  local fh = io.popen(cmd .. " 2>/dev/null")
  local s = fh:read("a")
  fh:close()
  return (s:gsub("%s+$", ""))
end

local cpu = (read_file("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "?"
local pyver = HAS_PY and capture("python3 -c 'import sys; print(sys.version.split()[0])'") or "none"
local luvver = HAS_LUV and capture(q(LUA) .. " -e 'print(require(\"luv\").version_string())'") or "none"
local T0 = futures.monotonic()

-- Other processes' use of the machine during each workload, so that a
-- figure taken on a busy machine is flagged: the machine's busy CPU ticks
-- (/proc/stat) minus ours and our children's (/proc/self/stat), over the
-- elapsed ticks, in cores.
local NCPU = futures.cpu_count()

local function machine_ticks()
  local v = {}
  for x in ((read_file("/proc/stat") or ""):match("^cpu%s+([^\n]+)") or ""):gmatch("%d+") do
    v[#v + 1] = tonumber(x)
  end
  if #v < 8 then return nil end
  local total = 0
  for i = 1, 8 do total = total + v[i] end   -- guest time is already in user
  return total - v[4] - v[5], total
end

local function own_ticks()
  local rest = (read_file("/proc/self/stat") or ""):match("%) (.*)")
  if not rest then return nil end
  local f = {}
  for x in rest:gmatch("%S+") do f[#f + 1] = x end
  -- utime, stime, cutime, cstime are fields 14-17; rest starts at field 3
  return tonumber(f[12]) + tonumber(f[13]) + tonumber(f[14]) + tonumber(f[15])
end

local function section(name)
  local busy, total = machine_ticks()
  local own = own_ticks()
  local s = current and sections[current]
  if s and busy and own and s.busy then
    local dt = total - s.total
    s.others = dt > 0 and math.max(0, (busy - s.busy) - (own - s.own)) / dt * NCPU or 0
  end
  current = name
  if name then sections[name] = { busy = busy, total = total, own = own } end
end

---------------------------------------------------------------- W1
if want("W1") then
  section("W1")
  local c = CFG.w1
  local jobs = {}
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "W1 tiny tasks, " .. POOL[kind], rounds = c.rounds,
                        run = function() return ours(kind, "w1", c.n, c.reps) end }
    jobs[#jobs + 1] = { label = "W1 Python, " .. POOL[kind], rounds = c.py_rounds[kind],
                        run = function() return py("w1", kind, c.n, c.py_reps[kind]) end }
  end
  jobs[#jobs + 1] = { label = "W1 luv", rounds = c.rounds, run = function() return luv("w1", c.n, c.reps) end }
  local got = interleave(jobs)
  local luv_res = got[#got]
  for k, kind in ipairs(KINDS) do
    local f, p = got[2 * k - 1], got[2 * k]
    local r = row { label = "W1 tiny submit+result, us/task", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "submit", 1e6), py = fig(p[1], p[2], "submit", 1e6),
      luv = kind == "thread" and fig(luv_res[1], luv_res[2], "submit", 1e6) or nil }
    r.targets = kind == "thread" and { min_ratio(12), no_slower_than_luv() } or { min_ratio(25) }
    row { label = "W1 tiny map chunksize=500, us/task", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "map", 1e6), py = fig(p[1], p[2], "map", 1e6),
      targets = kind == "process" and { min_ratio(1) } or nil }
  end
  notes[#notes + 1] = ("W1: %d tasks x -> x + 1, median of %d runs (Python: %d threads, %d processes), "
    .. "each child's after one untimed run; threads ignore chunksize.")
    :format(c.n, c.rounds * c.reps, c.py_rounds.thread * c.py_reps.thread,
            c.py_rounds.process * c.py_reps.process)
end

---------------------------------------------------------------- W1 forms
-- The code cache: W1's call with the function written inline or capturing
-- a local, against the hoisted form in the same child.
if want("W1f") then
  section("W1f")
  local c = CFG.w1
  local jobs = {}
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "W1 function forms, " .. POOL[kind], rounds = c.rounds,
                        run = function() return ours(kind, "w1_forms", c.n, c.reps) end }
  end
  local got = interleave(jobs)
  local w1 = {}
  for _, r in ipairs(rows) do
    if r.label == "W1 tiny submit+result, us/task" then w1[r.pool] = r end
  end
  for k, kind in ipairs(KINDS) do
    local f = got[k]
    local base = w1[POOL[kind]] or {}
    row { label = "W1 inline closure, us/task", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "inline", 1e6), py = base.py, luv = base.luv,
      targets = kind == "thread" and { min_ratio(12), no_slower_than_luv() } or nil }
    row { label = "W1 inline closure / hoisted", pool = POOL[kind], suffix = "x",
      fut = fig(f[1], f[2], "inline_x"), targets = { at_most(1.25, "x") } }
    row { label = "W1 closure with an upvalue / hoisted", pool = POOL[kind], suffix = "x",
      fut = fig(f[1], f[2], "upvalue_x"), targets = { at_most(1.25, "x") } }
  end
  notes[#notes + 1] = ("W1 forms: W1's call written three ways in one pool, round-robin: hoisted "
    .. "(`submit(inc, i)`), inline (`submit(function(x) return x + 1 end, i)`) and capturing a "
    .. "local number; the ratios are medians of the per-round ratios to hoisted (%d rounds); "
    .. "Python and luv: their W1 figures."):format(c.rounds * c.reps)
end

---------------------------------------------------------------- constant
-- futures.constant: a big lookup table captured by many calls crosses to
-- each worker once.
if want("C") then
  section("C")
  local calls, reps = 2000, QUICK and 1 or 3
  local jobs = {}
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "constant lookup, " .. POOL[kind], rounds = QUICK and 1 or 2,
                        run = function() return ours(kind, "constant", calls, reps) end }
  end
  local got = interleave(jobs)
  for k, kind in ipairs(KINDS) do
    local f = got[k]
    row { label = ("constant lookup, %d calls, s"):format(calls), pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "pool") }
    row { label = "constant lookup / (2 copies + calls here)", pool = POOL[kind], suffix = "x",
      fut = fig(f[1], f[2], "x"), targets = { at_most(1.5, "x") } }
  end
  notes[#notes + 1] = ("constant: map over %d calls of a function capturing a 200,000-key table marked "
    .. "with futures.constant, a fresh pool of 2 each round; against two copies of the table "
    .. "(one _roundtrip) plus the calls run in the caller, same round; median of %d rounds.")
    :format(calls, (QUICK and 1 or 2) * reps)
end

---------------------------------------------------------------- W2
if want("W2") then
  section("W2")
  local c = CFG.w2
  local jobs = {
    { label = "W2 CPU, sequential Lua", rounds = c.rounds, run = function() return lua_child("w2_seq", c.reps) end },
    { label = "W2 CPU, sequential Python", rounds = c.py_rounds, run = function() return py("w2", "seq", 1) end },
    { label = "W2 luv", rounds = c.rounds, run = function() return luv("w2", c.reps) end },
    { label = "W2 two sequential Lua at once", rounds = c.rounds, run = function() return lua_pair(c.reps) end },
  }
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "W2 CPU, " .. POOL[kind], rounds = c.rounds,
                        run = function() return ours(kind, "w2", c.reps) end }
    jobs[#jobs + 1] = { label = "W2 Python, " .. POOL[kind], rounds = c.py_rounds,
                        run = function() return py("w2", kind, 1) end }
  end
  local got = interleave(jobs)
  local seq = fig(got[1][1], got[1][2], "seq")
  local py_seq = fig(got[2][1], got[2][2], "seq")
  local luv_t = fig(got[3][1], got[3][2], "pool")
  local pair = fig(got[4][1], got[4][2], "pair")
  row { label = "W2 machine: 2 sequential at once", suffix = "x",
        fut = num(seq) and num(pair) and 2 * seq / pair or pair }
  for k, kind in ipairs(KINDS) do
    local f, p = got[3 + 2 * k], got[4 + 2 * k]
    local ft, pt = fig(f[1], f[2], "pool"), fig(p[1], p[2], "pool")
    local lt = kind == "thread" and luv_t or nil
    row { label = "W2 cpu map, s", pool = POOL[kind], better = "low", fut = ft, py = pt, luv = lt }
    local function speedup(base, t) if num(base) and num(t) then return base / t end return t end
    row { label = "W2 cpu speed-up vs sequential", pool = POOL[kind], suffix = "x",
      fut = speedup(seq, ft), py = speedup(py_seq, pt), luv = lt and speedup(seq, lt),
      targets = { at_least(1.85, "x") } }
    row { label = "W2 workers busy with calls (of 2)", pool = POOL[kind], fut = fig(f[1], f[2], "busy") }
  end
  notes[#notes + 1] = ("W2: is_prime over the 6 primes twice (12 calls), median of %d rounds (Python %d); "
    .. "sequential Lua %s s, sequential Python %s s; speed-ups are over the same language's sequential run.  "
    .. "Workers busy: the time the calls took, timed inside the workers, over the map's own time; "
    .. "2 would be a pool that costs nothing.  Machine: two sequential Lua runs in two processes at "
    .. "the same time, 2 x sequential over the slower of the two; the most any pool of 2 could reach here.")
    :format(c.rounds * c.reps, c.py_rounds, fmt_num(seq), fmt_num(py_seq))
end

---------------------------------------------------------------- W3
if want("W3") then
  section("W3")
  local c = CFG.w3
  local mb = c.tasks * c.n * 8 / 1e6
  local function mbs(t) if num(t) then return mb / t end return t end
  local jobs = {
    { label = "W3 transfer, sequential Lua", rounds = c.rounds,
      run = function() return lua_child("w3_seq", c.tasks, c.n, c.reps) end },
    { label = "W3 sequential Python", rounds = c.py_rounds,
      run = function() return py("w3", "seq", c.tasks, c.n, c.reps) end },
    { label = "W3 luv", rounds = c.rounds, run = function() return luv("w3", c.tasks, c.n, c.reps) end },
  }
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "W3 transfer, " .. POOL[kind], rounds = c.rounds,
                        run = function() return ours(kind, "w3", c.tasks, c.n, c.reps) end }
    jobs[#jobs + 1] = { label = "W3 Python, " .. POOL[kind], rounds = c.py_rounds,
                        run = function() return py("w3", kind, c.tasks, c.n, c.reps) end }
  end
  local got = interleave(jobs)
  local seq = mbs(fig(got[1][1], got[1][2], "seq"))
  local py_seq = mbs(fig(got[2][1], got[2][2], "seq"))
  local luv_mbs = mbs(fig(got[3][1], got[3][2], "pool"))
  for k, kind in ipairs(KINDS) do
    local f, p = got[2 + 2 * k], got[3 + 2 * k]
    local fm, pm = mbs(fig(f[1], f[2], "pool")), mbs(fig(p[1], p[2], "pool"))
    row { label = ("W3 transfer %d x %dk floats, MB/s"):format(c.tasks, c.n // 1000), pool = POOL[kind],
      better = "high",
      fut = fm, py = pm, luv = kind == "thread" and luv_mbs or nil,
      targets = { min_ratio(kind == "thread" and 6 or 3) } }
    local function rel(x, base) if num(x) and num(base) then return x / base end return x end
    row { label = "W3 speed-up vs sequential build", pool = POOL[kind], suffix = "x",
      fut = rel(fm, seq), py = rel(pm, py_seq), luv = kind == "thread" and rel(luv_mbs, seq) or nil,
      targets = { at_least(1.7, "x") } }
  end
  notes[#notes + 1] = ("W3: %d tasks each building and returning %d floats (payload %g MB, 8 bytes a float), "
    .. "median of %d rounds (Python %d), each after one untimed round that sizes the heap; building them "
    .. "sequentially (and keeping them, as the pool's futures keep theirs) runs at %s MB/s in Lua, "
    .. "%s MB/s in Python; "
    .. "luv packs them into a string with string.pack and unpacks into a table.")
    :format(c.tasks, c.n, mb, c.rounds * c.reps, c.py_rounds * c.reps, fmt_num(seq), fmt_num(py_seq))
end

---------------------------------------------------------------- W4
if want("W4") then
  section("W4")
  local c = CFG.w4
  local jobs = {}
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "W4 startup/shutdown, " .. POOL[kind], rounds = c.rounds,
                        run = function() return ours(kind, "w4", c.reps) end }
    jobs[#jobs + 1] = { label = "W4 Python, " .. POOL[kind], rounds = c.rounds,
                        run = function() return py("w4", kind, c.reps) end }
  end
  local got = interleave(jobs)
  for k, kind in ipairs(KINDS) do
    local f, p = got[2 * k - 1], got[2 * k]
    row { label = "W4 creation to first result, ms", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "startup", 1e3), py = fig(p[1], p[2], "startup", 1e3),
      targets = { min_ratio(kind == "thread" and 1 or 3) } }
    row { label = "W4 shutdown(wait), ms", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "shutdown", 1e3), py = fig(p[1], p[2], "shutdown", 1e3) }
  end
  notes[#notes + 1] = ("W4: median of %d; Python's process pool uses its default start method (fork on Linux).")
    :format(c.rounds * c.reps)
end

---------------------------------------------------------------- W5
if want("W5") then
  section("W5")
  local c = CFG.w5
  for _, kind in ipairs(KINDS) do
    local base = {}
    for i, n in ipairs(c.sizes) do
      progress("W5 wait/as_completed over %d futures, %s", n, POOL[kind])
      local f, fwhy = ours(kind, "w5", n, c.reps[i])
      local p, pwhy
      if c.py_reps[kind][i] > 0 then
        p, pwhy = py("w5", kind, n, c.py_reps[kind][i])
      else
        pwhy = "skipped (time)"
      end
      for _, how in ipairs { "wait", "as_completed" } do
        local r = row { label = ("W5 %s n=%d, us/future"):format(how, n), pool = POOL[kind],
          better = "low", fut = fig(f, fwhy, how, 1e6), py = fig(p, pwhy, how, 1e6) }
        if i == 1 then base[how] = r
        elseif i == #c.sizes then r.targets = { flat(base[how], 2, c.sizes[1]) } end
      end
    end
  end
  notes[#notes + 1] = ("W5: n tiny tasks submitted, then all awaited by wait or as_completed; time per future "
    .. "from the first submit to the end of the wait; medians of %s runs (Python threads %s, processes %s; "
    .. "skipped: Python's process pool, where it would take about half a minute). "
    .. "Flat = the n=%d figure at most 2x the n=%d one.")
    :format(table.concat(c.reps, "/"), table.concat(c.py_reps.thread, "/"), table.concat(c.py_reps.process, "/"),
      c.sizes[#c.sizes], c.sizes[1])
end

---------------------------------------------------------------- W6
if want("W6") then
  section("W6")
  local c = CFG.w6
  for _, kind in ipairs(KINDS) do
    progress("W6 memory, %d tasks, %s", c.n, POOL[kind])
    local f, fwhy = ours(kind, "w6", c.n)
    local p, pwhy
    if c.python[kind] then p, pwhy = py("w6", kind, c.n) else pwhy = "skipped (time)" end
    row { label = ("W6 peak RSS, %s tiny tasks held, MB"):format(c.n >= 1000000 and ("%dM"):format(c.n // 1000000) or c.n),
      pool = POOL[kind], better = "low",
      fut = fig(f, fwhy, "peak_kb", 1 / 1024), py = fig(p, pwhy, "peak_kb", 1 / 1024),
      targets = kind == "thread" and { at_most(300, " MB") } or nil }
    if f and f.seconds then
      notes[#notes + 1] = ("W6 %s: the %d tasks ran in %.1f s (this library)"):format(POOL[kind], c.n, f.seconds[1])
    end

    progress("W6 idle workers, %s", POOL[kind])
    local fi, fiwhy = ours(kind, "idle")
    local pi, piwhy = py("idle", kind)
    local function per_worker(res, why)
      if not res then return why end
      local self_kb, kids = median(res.self_kb or {}), median(res.children_kb or {})
      if not self_kb then return why or "missing" end
      return (self_kb + (kids or 0)) / C.WORKERS
    end
    row { label = "W6 RSS per idle worker, KB", pool = POOL[kind], better = "low",
      fut = per_worker(fi, fiwhy), py = per_worker(pi, piwhy),
      targets = kind == "thread" and { at_most(512, " KB") } or nil }
  end
  notes[#notes + 1] = "W6: each measured in a child process of its own (peak = VmHWM of it plus its worker processes; "
    .. "per idle worker = the process's RSS growth plus the workers' own VmRSS, over 2); "
    .. "Python's process pool is skipped there (about 150 s for 1M tasks). Targets (threads): 1M tasks <= 300 MB, "
    .. "an idle pool of 2 < 1 MB."
end

---------------------------------------------------------------- W7
-- Mixed durations on a fresh pool of 2: one 0.6 s call, then ten 0.05 s
-- calls.  The ideal schedule runs the long call on one worker and the
-- short ones on the other: every call done at 0.600 s, the last short one
-- at 0.500 s.  A short call that waits behind the long one shows at once.
local function near(ideal, frac)
  return { text = ("<= %.3f +%g%%"):format(ideal, frac * 100), check = function(r)
    if not num(r.fut) then return nil end
    return r.fut <= ideal * (1 + frac), ("%.3f > %.3f"):format(r.fut, ideal * (1 + frac))
  end }
end

if want("W7") then
  section("W7")
  local c = CFG.w7
  local jobs = {}
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "W7 mixed durations, " .. POOL[kind], rounds = c.rounds,
                        run = function() return ours(kind, "w7", c.reps) end }
    jobs[#jobs + 1] = { label = "W7 Python, " .. POOL[kind], rounds = c.py_rounds,
                        run = function() return py("w7", kind, c.reps) end }
  end
  local got = interleave(jobs)
  for k, kind in ipairs(KINDS) do
    local f, p = got[2 * k - 1], got[2 * k]
    row { label = "W7 0.6 s + 10 x 0.05 s, makespan s", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "makespan"), py = fig(p[1], p[2], "makespan"), targets = { near(0.600, 0.05) } }
    row { label = "W7 0.6 s + 10 x 0.05 s, last short s", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "last_short"), py = fig(p[1], p[2], "last_short"), targets = { near(0.500, 0.06) } }
  end
  notes[#notes + 1] = ("W7: a fresh pool of 2 per run (its start is timed), one 0.6 s sleep then ten 0.05 s "
    .. "sleeps; ideal makespan 0.600 s, last short call 0.500 s; median of %d runs (Python: %d).")
    :format(c.rounds * c.reps, c.py_rounds * c.reps)
end

---------------------------------------------------------------- C1
if want("C1") then
  section("C1")
  local c = CFG.c1
  local jobs = {}
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "C1 coroutines, " .. POOL[kind], rounds = c.rounds,
      run = function() return ours(kind, "c1", c.n, c.reps) end }
    jobs[#jobs + 1] = { label = "C1 Python asyncio, " .. POOL[kind], rounds = c.py_rounds,
      run = function() return py("c1", kind, c.n, c.reps) end }
  end
  local got = interleave(jobs)
  for k, kind in ipairs(KINDS) do
    local f, p = got[2 * k - 1], got[2 * k]
    row { label = "C1 spawn+submit+await, us/coroutine", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "coroutines", 1e6), py = fig(p[1], p[2], "coroutines", 1e6),
      targets = { min_ratio(10) } }
    if kind == "thread" then
      row { label = "C1 spawn + resume once, no pool, us", better = "low",
        fut = fig(f[1], f[2], "spawn_resume", 1e6), py = "n/a", targets = { at_most(1, " us") } }
    end
  end
  notes[#notes + 1] = ("C1: %d coroutines (futures.spawn), each submitting x -> x + 1 and awaiting it "
    .. "(f:result() suspends it), against Python's asyncio doing the same with loop.run_in_executor and "
    .. "gather on the same kind of pool; medians of %d rounds x %d runs (Python %d rounds). "
    .. "Spawn + resume once: %d coroutines suspended on one bare Future, all resumed when it is set.")
    :format(c.n, c.rounds, c.reps, c.py_rounds, c.n)
end

---------------------------------------------------------------- Q1
if want("Q1") then
  section("Q1")
  local c = CFG.q1
  local jobs = {}
  for _, kind in ipairs(KINDS) do
    jobs[#jobs + 1] = { label = "Q1 queue stream, " .. POOL[kind], rounds = c.rounds,
      run = function() return ours(kind, "q1", c.n[kind], c.reps) end }
    jobs[#jobs + 1] = { label = "Q1 Python queue, " .. POOL[kind], rounds = c.py_rounds,
      run = function() return py("q1", kind, c.py_n[kind], c.reps) end }
  end
  local got = interleave(jobs)
  for k, kind in ipairs(KINDS) do
    local f, p = got[2 * k - 1], got[2 * k]
    row { label = "Q1 a running call streams ints, us/value", pool = POOL[kind], better = "low",
      fut = fig(f[1], f[2], "values", 1e6), py = fig(p[1], p[2], "values", 1e6),
      targets = { min_ratio(10) } }
  end
  notes[#notes + 1] = ("Q1: a call streams integers to the caller through a queue of maxsize 1000 "
    .. "(futures.Queue; Python: queue.Queue from a pool thread, a multiprocessing Manager queue from "
    .. "a process-pool worker); %d / %d values (Python %d / %d), medians of %d rounds x %d runs.")
    :format(c.n.thread, c.n.process, c.py_n.thread, c.py_n.process, c.rounds, c.reps)
end

---------------------------------------------------------------- S1
if want("S1") then
  section("S1")
  local c = CFG.s1
  for _, kind in ipairs(KINDS) do
    progress("S1 %s", POOL[kind])
    local res, why = ours(kind, "s1", c.reps)
    row { label = "S1 cancel(true) of a busy loop to worker free, ms", pool = POOL[kind], better = "low",
      fut = fig(res, why, "free", 1e3), py = "n/a",
      targets = { at_most(kind == "thread" and 1 or 5, " ms") } }
  end
  notes[#notes + 1] = ("S1: a pool of 1 worker running `while true do end`; from f:cancel(true) to the "
    .. "result of the next tiny call (the worker free again); median of %d runs. Python cannot stop a "
    .. "running call."):format(c.reps)
end

---------------------------------------------------------------- transfer
if want("T") then
  section("T")
  progress("transfer micro-benchmark")
  local ok, t = pcall(T.run)
  if not ok then
    progress("transfer: %s", tostring(t))
    row { label = "T transfer", fut = "error (see stderr)" }
  else
    row { label = "T 200k floats: one copy / Lua build", suffix = "x", fut = t.table_copy / t.build,
      py = "n/a", targets = { at_most(3, "x") } }
    row { label = "T 16 MiB string, one copy, GB/s", fut = t.string_gbs, py = "n/a",
      targets = { at_least(2, " GB/s") } }
    notes[#notes + 1] = ("T: futures.core._roundtrip (new state + 2 encodes + 2 decodes); one copy = "
      .. "(roundtrip - roundtrip of one integer %.0f us) / 2. 200,000 floats: Lua builds them in %.2f ms, "
      .. "roundtrip %.2f ms, one copy %.2f ms. 16 MiB string: roundtrip %.1f ms (%.2f GB/s), one copy %.1f ms.")
      :format(t.fixed * 1e6, t.build * 1e3, t.table_rt * 1e3, t.table_copy * 1e3,
        t.string_rt * 1e3, t.string_rt_gbs, t.string_copy * 1e3)
    notes[#notes + 1] = ("T: this machine's own pace: Lua copies the 16 MiB string (s:sub(1)) at %.2f GB/s "
      .. "into memory the allocator reuses, %.2f GB/s into fresh memory (page faults).")
      :format(t.lua_copy_gbs, t.lua_fresh_gbs)
  end
end

---------------------------------------------------------------- output
section(nil)
if QUICK then print("BENCH_QUICK=1: one run at small sizes; these figures mean nothing") end
print(("%s benchmarks: %d cores (%s), %s, Python %s, luv %s, 2 workers per pool; took %.0f s")
  :format(futures._VERSION or "futures", futures.cpu_count(), cpu, _VERSION, pyver, luvver,
    futures.monotonic() - T0))
do
  local parts, busy = {}, false
  for _, name in ipairs { "W1", "W1f", "C", "W2", "W3", "W4", "W5", "W6", "W7", "C1", "Q1", "S1", "T" } do
    local sec = sections[name]
    if sec and sec.others then
      parts[#parts + 1] = ("%s %.2f"):format(name, sec.others)
      busy = busy or sec.others > BUSY_LIMIT
    end
  end
  print(("other processes' CPU use during each workload, in cores: %s%s"):format(table.concat(parts, ", "),
    busy and ("\n* = other processes used more than %.2f cores meanwhile: rerun on a quiet machine"):format(BUSY_LIMIT) or ""))
end
print("vs Py = how many times better this library's figure is than Python's (> 1: futures better)")
print()
print_table()
print()
for _, n in ipairs(notes) do print("- " .. n) end
