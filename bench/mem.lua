-- Child program for the memory workloads, so that each peak RSS is this
-- process's own:  lua5.4 bench/mem.lua (w6 KIND N | idle KIND)
-- Prints the line protocol of bench/common.lua.
local dir = arg[0]:match("^(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local C = require "common"
local W = require "workloads"

local what, kind, n = arg[1], arg[2], tonumber(arg[3])
local res
if what == "w6" then
  res = W.w6(kind, n)
elseif what == "idle" then
  res = W.idle(kind)
else
  error("usage: mem.lua (w6 KIND N | idle KIND)")
end
local names = {}
for k in pairs(res) do names[#names + 1] = k end
table.sort(names)
for _, k in ipairs(names) do C.emit(k, res[k]) end
