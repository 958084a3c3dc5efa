-- Child program running one workload of bench/workloads.lua in a fresh
-- interpreter, as bench/py_bench.py runs each of Python's: no figure
-- depends on what an earlier workload left in the heap, and each peak RSS
-- is this process's own.
--   lua5.4 bench/child.lua WORKLOAD [ARGS...]   e.g.  w3 thread 200 50000 5
-- Prints the line protocol of bench/common.lua.
local dir = arg[0]:match("^(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local C = require "common"
local W = require "workloads"

local fn = W[arg[1] or ""]
if not fn then error("usage: child.lua WORKLOAD [ARGS...] (a function of bench/workloads.lua)") end
local args = {}
for i = 2, #arg do args[#args + 1] = tonumber(arg[i]) or arg[i] end
local res = fn(table.unpack(args))
local names = {}
for k in pairs(res) do names[#names + 1] = k end
table.sort(names)
for _, k in ipairs(names) do C.emit(k, res[k]) end
