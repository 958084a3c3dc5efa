-- Three ways to read files on a thread pool: futures and an explicit
-- shutdown, the same under <close>, and map with a timeout.
-- Python: the read_file example of coderzcolumn's concurrent.futures tutorial
local futures = require "futures"

-- Some files to read (removed at the end).
local files = {}
for i = 1, 5 do
  files[i] = os.tmpname()
  local fh <close> = assert(io.open(files[i], "w"))
  fh:write(("line %d of f%d\n"):format(1, i), ("line %d of f%d\n"):format(2, i))
end

local function read_file(filepath)
  local lines = {}
  for line in io.lines(filepath) do lines[#lines + 1] = line end
  return lines
end

-- Naive way: start a pool, keep the futures, shut it down yourself.
local executor = futures.ThreadPoolExecutor{ max_workers = 8 }
local fs = {}
for _, file in ipairs(files) do fs[#fs + 1] = executor:submit(read_file, file) end
local data = {}
for _, future in ipairs(fs) do
  data[#data + 1] = future:result()   -- blocks until that file has been read
end
executor:shutdown()
print("naive:", #data, "files,", data[1][1])

-- Better way: <close> shuts the pool down when the block ends.
fs = {}
do
  local ex <close> = futures.ThreadPoolExecutor{ max_workers = 8 }
  for _, file in ipairs(files) do fs[#fs + 1] = ex:submit(read_file, file) end
end
data = {}
for _, future in ipairs(fs) do data[#data + 1] = future:result() end
print("<close>:", #data, "files,", data[5][2])

-- map(): results in input order; a file that takes longer than the timeout
-- (counted from the map call) raises TimeoutError from the loop.
data = {}
local ok, e = pcall(function()
  local ex <close> = futures.ThreadPoolExecutor{ max_workers = 8 }
  for _, lines in ex:map(read_file, files, { timeout = 10 }) do
    data[#data + 1] = lines
  end
end)
if not ok then print(("\n%s\n"):format(e)) end
print("map:", #data, "files,", data[3][1])

for _, file in ipairs(files) do os.remove(file) end
