-- as_completed over a table keyed by futures: each future remembers its input.
-- Python: the load_url example of the concurrent.futures docs, with local
-- files instead of web pages (one of them is missing).
local futures = require "futures"

local FILES = { "/etc/hostname", "README.md", arg[0], "/no/such/file" }

-- Read a whole file; a failure raises, and the error travels to the future.
local function load_file(path)
  local fh <close> = assert(io.open(path, "rb"))
  return fh:read("a")
end

local executor <close> = futures.ThreadPoolExecutor{ max_workers = 5 }
-- Start the loads and mark each future with its file name.
local file_of = {}
for _, path in ipairs(FILES) do file_of[executor:submit(load_file, path)] = path end

for future in futures.as_completed(file_of) do
  local path = file_of[future]
  local ok, data = pcall(future.result, future)
  if not ok then
    print(("%q generated an exception: %s"):format(path, data))
  else
    print(("%q is %d bytes"):format(path, #data))
  end
end
