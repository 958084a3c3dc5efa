-- Shared by the scripts that spec/mpi_spec.lua runs under mpiexec: every
-- rank runs the script; rank 0 reports each case as one line
-- ("case <name> ok" or "case <name> FAIL <why>"), the other ranks report
-- each session they served ("rank <r> served <session>").
local mpi = require "futures.mpi"

local M = {}

function M.case(name, fn)
  local ok, err = pcall(fn)
  local why = not ok and tostring(err):gsub("\n", " | ") or ""
  print(("case %s %s"):format(name, ok and "ok" or "FAIL " .. why))
end

-- Makes an executor on every rank; runs body(ex) on rank 0.
function M.session(name, opts, body)
  local ex = mpi.MPIPoolExecutor(opts)
  if ex then
    body(ex)
  else
    print(("rank %d served %s"):format(mpi.rank(), name))
  end
end

return M
