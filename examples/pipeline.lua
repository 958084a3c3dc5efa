-- A pipeline over real files: a reader sends lines into one queue, parse
-- workers turn them into records and send those into another, and a
-- writer stores them in an output file.  Closing a queue tells the next
-- stage that nothing more comes.
local futures = require "futures"

local WORKERS = 2
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))

-- The input: three files of "name,score" lines.
local expected = 0
for f = 1, 3 do
  local out = assert(io.open(("%s/in%d.csv"):format(dir, f), "w"))
  for i = 1, 100 do
    out:write(("item%d_%d,%d\n"):format(f, i, i * f))
    expected = expected + i * f
  end
  out:close()
end

local ex <close> = futures.ThreadPoolExecutor(WORKERS + 2)   -- or ProcessPoolExecutor
local lines, records = futures.Queue(64), futures.Queue(64)

local reader = ex:submit(function(dir, lines)
  local n = 0
  for f = 1, 3 do
    for line in io.lines(("%s/in%d.csv"):format(dir, f)) do lines:put(line); n = n + 1 end
  end
  lines:close()
  return n
end, dir, lines)

local parsers = {}
for w = 1, WORKERS do
  parsers[w] = ex:submit(function(lines, records)
    local n = 0
    for line in lines:iter() do
      local name, score = line:match("^([^,]+),(%d+)$")
      records:put({ name = name, score = tonumber(score) })
      n = n + 1
    end
    return n
  end, lines, records)
end

local writer = ex:submit(function(path, records)
  local out = assert(io.open(path, "w"))
  local n = 0
  for r in records:iter() do out:write(r.name, "\t", r.score, "\n"); n = n + 1 end
  out:close()
  return n
end, dir .. "/out.tsv", records)

futures.wait(parsers)
records:close()                   -- the last parser is done: the writer may finish
local written = writer:result()   -- the output file is complete

-- Read the result back and check it.
local total, count = 0, 0
for line in io.lines(dir .. "/out.tsv") do
  local score = assert(tonumber(line:match("\t(%d+)$")))
  total, count = total + score, count + 1
end
print(("read %d lines, parsed %d, wrote %d"):format(reader:result(), parsers[1]:result() + parsers[2]:result(),
  written))
print(("sum of scores %d (expected %d): %s"):format(total, expected, total == expected and "ok" or "WRONG"))
os.remove(dir .. "/out.tsv")
for f = 1, 3 do os.remove(("%s/in%d.csv"):format(dir, f)) end
os.remove(dir)
