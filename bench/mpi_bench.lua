-- `make bench-mpi`: futures.mpi's MPIPoolExecutor beside mpi4py.futures,
-- both under `mpiexec --oversubscribe -n 3` (rank 0 and 2 worker ranks).
--   tiny   submit(inc, i):result() in a loop: seconds per call
--   map    map(inc, 1..N, {chunksize = 500}): seconds per call
--   prime  the speed-up of map(is_prime, 10 primes) over running them in turn,
--          beside our ProcessPoolExecutor(2) in the same job: ROUNDS rounds,
--          each times the plain loop and both pools (in alternating order);
--          the ratio is the median of the rounds' own ratios
-- Run plainly, it starts both jobs and prints the table with ratios
-- measured in this run; under mpiexec (OMPI_COMM_WORLD_SIZE set) it is
-- the Lua job.  The other figures are medians of REPS runs.
local dir = arg[0]:match("^(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local C = require "common"

local TINY, MAP, REPS, ROUNDS = 2000, 100000, 5, 15
if os.getenv("BENCH_QUICK") == "1" then TINY, MAP, REPS, ROUNDS = 200, 10000, 1, 3 end

local function timed(reps, fn)
  local futures = require "futures"
  local t = {}
  for r = 1, reps do
    local t0 = futures.monotonic()
    fn()
    t[r] = futures.monotonic() - t0
  end
  return t
end

local function per(t, n)
  local out = {}
  for i, v in ipairs(t) do out[i] = v / n end
  return out
end

if os.getenv("OMPI_COMM_WORLD_SIZE") then
  local futures = require "futures"
  local mpi = require "futures.mpi"
  local ex = mpi.MPIPoolExecutor()
  if not ex then return end
  for _ in ex:map(C.inc, { 1, 2, 3, 4 }) do end
  C.emit("tiny", per(timed(REPS, function()
    for i = 1, TINY do ex:submit(C.inc, i):result() end
  end), TINY))
  local items = {}
  for i = 1, MAP do items[i] = i end
  C.emit("map", per(timed(REPS, function()
    for _ in ex:map(C.inc, items, { chunksize = 500 }) do end
  end), MAP))
  local work = {}   -- ten calls of like size: two workers can halve the time
  for i = 1, 10 do work[i] = C.PRIMES[(i - 1) % 5 + 1] end
  local px <close> = futures.ProcessPoolExecutor(2)
  for _ in px:map(C.inc, { 1, 2, 3, 4 }) do end
  -- Rounds interleaved (the order alternates), so a neighbour's load
  -- falls on both pools alike: the ratio is the median of each round's own.
  local function prime_map(e) return timed(1, function() for _ in e:map(C.is_prime, work) do end end)[1] end
  local seq, ours, proc = {}, {}, {}
  for r = 1, ROUNDS do
    seq[r] = timed(1, function() for _, p in ipairs(work) do C.is_prime(p) end end)[1]
    if r % 2 == 1 then ours[r] = prime_map(ex); proc[r] = prime_map(px)
    else proc[r] = prime_map(px); ours[r] = prime_map(ex) end
  end
  ex:shutdown()
  C.emit("prime_seq", seq)
  C.emit("prime_mpi", ours)
  C.emit("prime_proc", proc)
  return
end

local q = C.shell_quote
local LUA = "lua5.4"
do local i = -1; while arg[i] do LUA = arg[i]; i = i - 1 end end
local MPIEXEC = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec --oversubscribe -n 3 "
local PY = "/usr/bin/python3"   -- Debian's, with python3-mpi4py

io.stderr:write("bench-mpi: futures.mpi job\n")
local ours, err = C.collect(MPIEXEC .. q(LUA) .. " " .. q(arg[0]))
if err then io.stderr:write("futures.mpi: ", err, "\n") end
local py, perr = nil, "n/a (no mpi4py)"
if os.execute(PY .. " -c 'import mpi4py.futures' >/dev/null 2>&1") == true then
  io.stderr:write("bench-mpi: mpi4py.futures job\n")
  py, perr = C.collect(("%s%s %s %d %d %d"):format(MPIEXEC, PY, q(dir .. "mpi4py_bench.py"), TINY, MAP, REPS))
  if perr then io.stderr:write("mpi4py: ", perr, "\n") end
end

local function med(res, name) return res and C.median(res[name] or {}) end
local function us(v) return v and ("%.2f us"):format(v * 1e6) or "n/a" end
local rows = {}
local function row(label, fut, other, ratio, target, ok)
  rows[#rows + 1] = { label, fut, other, ratio, target, ok == nil and "n/a" or ok and "PASS" or "BELOW" }
end

local t_f, t_p = med(ours, "tiny"), med(py, "tiny")
local r = t_f and t_p and t_p / t_f
row("tiny submit+result", us(t_f), us(t_p), r and ("%.1fx"):format(r) or "n/a", ">= 10x mpi4py", r and r >= 10)
local m_f, m_p = med(ours, "map"), med(py, "map")
r = m_f and m_p and m_p / m_f
row("map chunksize=500", us(m_f), us(m_p), r and ("%.2fx"):format(r) or "n/a", ">= 1x mpi4py", r and r >= 1)
local s, pm, pp = med(ours, "prime_seq"), med(ours, "prime_mpi"), med(ours, "prime_proc")
local su_m, su_p = s and pm and s / pm, s and pp and s / pp
local per_round = {}   -- (seq/ours) / (seq/proc) of each round
for i, t in ipairs(ours and ours.prime_mpi or {}) do per_round[i] = ours.prime_proc[i] / t end
r = C.median(per_round)
row("is_prime map speed-up", su_m and ("%.2fx"):format(su_m) or "n/a",
  su_p and ("%.2fx (process pool)"):format(su_p) or "n/a", r and ("%.3f"):format(r) or "n/a",
  ">= 0.95 of process pool", r and r >= 0.95)

local head = { "workload", "futures.mpi", "baseline", "ratio", "target", "status" }
local w = {}
for i, h in ipairs(head) do w[i] = #h end
for _, rr in ipairs(rows) do for i, c in ipairs(rr) do if #c > w[i] then w[i] = #c end end end
local function line(cells)
  local out = {}
  for i, c in ipairs(cells) do out[i] = c .. (" "):rep(w[i] - #c) end
  print(table.concat(out, "  "))
end
line(head)
for _, rr in ipairs(rows) do line(rr) end
print(("\n(mpiexec -n 3: rank 0 + 2 worker ranks; tiny and map: medians of %d runs, baseline "
  .. "mpi4py.futures%s; is_prime: %d rounds, ours and the process pool's in turn, "
  .. "the ratio the median of each round's)"):format(REPS, py and "" or " " .. perr, ROUNDS))
