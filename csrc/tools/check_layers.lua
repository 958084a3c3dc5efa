-- Fails (exit 1) on any cycle in the #include "..." graph of csrc/ and on
-- any C file over 600 lines: every dependency must point down, and each
-- file keep to one concern.  `make test` runs it first.
local dir = arg[1] or "csrc"
local MAX_LINES = 600

local files = {}
local p = assert(io.popen(("find %q -name '*.[ch]' | sort"):format(dir)))
for path in p:lines() do files[#files + 1] = path end
p:close()

-- A node is a file's name without its extension: foo.c and foo.h are one.
local function node(path) return (path:match("([^/]+)%.[ch]$")) end
local known, edges, big = {}, {}, {}
for _, path in ipairs(files) do known[node(path)] = true end
for _, path in ipairs(files) do
  local a, n = node(path), 0
  edges[a] = edges[a] or {}
  for line in io.lines(path) do
    n = n + 1
    local inc = line:match('^%s*#%s*include%s+"([^"]+)"')
    local b = inc and node(inc)
    if b and b ~= a and known[b] then edges[a][b] = true end
  end
  if path:match("%.c$") and n > MAX_LINES then big[#big + 1] = ("%s (%d lines)"):format(path, n) end
end

-- Depth-first search; a grey node met again closes a cycle.
local colour, stack, cycles = {}, {}, {}
local function visit(v)
  colour[v] = "grey"
  stack[#stack + 1] = v
  local next_nodes = {}
  for w in pairs(edges[v] or {}) do next_nodes[#next_nodes + 1] = w end
  table.sort(next_nodes)
  for _, w in ipairs(next_nodes) do
    if colour[w] == "grey" then
      local i = #stack
      while stack[i] ~= w do i = i - 1 end
      cycles[#cycles + 1] = table.concat(stack, " -> ", i) .. " -> " .. w
    elseif not colour[w] then
      visit(w)
    end
  end
  stack[#stack] = nil
  colour[v] = "black"
end
local names = {}
for v in pairs(known) do names[#names + 1] = v end
table.sort(names)
for _, v in ipairs(names) do if not colour[v] then visit(v) end end

for _, c in ipairs(cycles) do print("include cycle: " .. c) end
for _, b in ipairs(big) do print("over " .. MAX_LINES .. " lines: " .. b) end
if #cycles > 0 or #big > 0 then os.exit(1) end
print(("layers: %d files, no include cycle, none over %d lines"):format(#files, MAX_LINES))
