-- futures.mpi: MPIPoolExecutor, an executor whose workers are the other
-- ranks of an MPI job (as mpi4py.futures).  Every rank runs the script;
-- on rank 0 MPIPoolExecutor returns the executor, on the others it serves
-- rank 0's calls until rank 0 shuts it down, then returns nil.  The C half
-- (mpimod.c, passed as the chunk's argument) is a pool of the core with one
-- driver thread; this file adds the options and the core's own map.
local C = ...
local core = require "futures.core"

local mpi = {}

local rank, size = C._rank, C._size
function mpi.rank() return rank end
function mpi.size() return size end

-- map (with chunksize) is the process pool's: the same batching of calls
-- into one task, the same results in order.
local methods = C.MPIPoolExecutor_methods
local process_methods = core.ProcessPoolExecutor_methods
methods.map = process_methods.map
methods._map_batch = process_methods._map_batch

local function arg_error(msg)
  error(("bad argument #1 to 'MPIPoolExecutor' (%s)"):format(msg), 3)
end

local allowed = { max_workers = true, initializer = true, initargs = true }

-- mpi.MPIPoolExecutor([max_workers | {max_workers =, initializer =,
-- initargs =}]): max_workers is how many of the other ranks to use
-- (default all of them).  Checked on every rank alike, so a bad argument
-- fails the same way everywhere.
function mpi.MPIPoolExecutor(arg)
  local opts = {}
  if type(arg) == "table" then
    for k, v in pairs(arg) do
      if not allowed[k] then arg_error(("unknown option '%s'"):format(tostring(k))) end
      opts[k] = v
    end
  elseif arg ~= nil then
    opts.max_workers = arg
  end
  local n = opts.max_workers
  if n ~= nil then
    local i = math.tointeger(n)
    if not i or i < 1 then
      arg_error(("max_workers must be a positive integer, got %s"):format(tostring(n)))
    end
    n = i
  end
  local init = opts.initializer
  if init ~= nil and type(init) ~= "function" and not (getmetatable(init) or {}).__call then
    arg_error("initializer must be callable")
  end
  if opts.initargs ~= nil and type(opts.initargs) ~= "table" then
    arg_error("initargs must be a table")
  end
  return C.MPIPoolExecutor(n, init, opts.initargs)
end

return mpi
