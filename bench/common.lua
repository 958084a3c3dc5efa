-- Helpers shared by the benchmark driver and its child programs: medians,
-- /proc readings, the line protocol of the child programs, and the task
-- functions of the workloads (plain Lua functions with no upvalues but
-- _ENV, so they cross to any worker).
local M = {}

M.WORKERS = 2
M.PRIMES = { 112272535095293, 112582705942171, 112272535095293,
             115280095190773, 115797848077099, 1099726899285419 }

function M.inc(x) return x + 1 end

-- Trial division, as in Python's ProcessPoolExecutor example.
function M.is_prime(n)
  if n < 2 then return false end
  if n == 2 then return true end
  if n % 2 == 0 then return false end
  local r = math.floor(math.sqrt(n))
  for i = 3, r, 2 do
    if n % i == 0 then return false end
  end
  return true
end

-- is_prime(n) and how long it took, timed where it runs (W2's measure of
-- how busy the workers are).
function M.timed_is_prime(n)
  local now = require("futures").monotonic
  local t0 = now()
  M.is_prime(n)
  return now() - t0
end

-- A table of n floats built where it runs (the W3 payload).
function M.build(n)
  local t = {}
  for i = 1, n do t[i] = i + 0.5 end
  return t
end

function M.median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  if #s == 0 then return nil end
  table.sort(s)
  local m = (#s + 1) // 2
  if #s % 2 == 1 then return s[m] end
  return (s[m] + s[m + 1]) / 2
end

-- A field of /proc/<pid>/status in kB (pid defaults to this process).
function M.status_kb(field, pid)
  local fh = io.open("/proc/" .. (pid or "self") .. "/status")
  if not fh then return nil end
  local text = fh:read("a")
  fh:close()
  return tonumber(text:match("\n" .. field .. ":%s*(%d+)"))
end

function M.getpid()
  local fh = assert(io.open("/proc/self/stat"))
  local pid = fh:read("n")
  fh:close()
  return pid
end

-- The child processes of this process (of any of its threads).
function M.children()
  local pid = M.getpid()
  local ls = io.popen("ls /proc/" .. pid .. "/task")
  local tids = ls:read("a")
  ls:close()
  local out = {}
  for tid in tids:gmatch("%d+") do
    local fh = io.open("/proc/" .. pid .. "/task/" .. tid .. "/children")
    if fh then
      for p in fh:read("a"):gmatch("%d+") do out[#out + 1] = tonumber(p) end
      fh:close()
    end
  end
  return out
end

-- The line protocol of the child programs: "name sample sample ...".
function M.emit(name, samples)
  local parts = {}
  for i, v in ipairs(samples) do parts[i] = string.format("%.9g", v) end
  io.write(name, " ", table.concat(parts, " "), "\n")
  io.flush()
end

-- Runs a shell command speaking that protocol.  Returns {name = {samples}}
-- and, if it failed or printed anything else, a message saying so.
function M.collect(cmd)
  local fh = io.popen(cmd .. " 2>&1")
  local res, other = {}, {}
  for line in fh:lines() do
    local name, rest = line:match("^([%w_]+) ([-%d.eE+ naif]+)$")
    if name then
      local t = {}
      for v in rest:gmatch("%S+") do t[#t + 1] = tonumber(v) end
      res[name] = t
    elseif not line:match("^#") then
      other[#other + 1] = line
    end
  end
  local ok, how, code = fh:close()
  local msg
  if not ok or #other > 0 then
    msg = table.concat(other, " | "):sub(1, 300)
    if not ok then msg = ("exit %s %s: "):format(how, code) .. msg end
  end
  return res, msg
end

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

return M
