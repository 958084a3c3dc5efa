-- Fails (exit 1) when a file of csrc/ includes one of a higher layer, on
-- any cycle in the #include "..." graph, and on any C file over 600
-- lines: every dependency must point down, and each file keep to one
-- concern.  `make test` runs it first.  The layers, top to bottom, are
-- the README's "How it works"; a new file gets its row here.
local dir = arg[1] or "csrc"
local MAX_LINES = 600

local LAYERS = {
  { "futures.mpi", "mpimod mpidrive mpiserve mpisession" },   -- csrc/mpi/: a module of its own
  { "entry", "core embed testhooks backend procworker qremote main" },
  { "executors", "threadpool procpool proxy qserve procspawn procmon procdefs claim pool" },
  { "Lua API", "future wait spawn sysfuncs queueobj" },
  { "runtime", "suspend waiter fut owner queue" },
  { "workers", "task workerstate" },
  { "codec", "transfer callenc codec encode decode scalar names funcs consts paths codecctx proto" },
  { "base", "luax msg wire idmap clock arraypart pages slab slabring grow fifo outcome futures" },
}
local layer_of = {}
for i, l in ipairs(LAYERS) do
  for name in l[2]:gmatch("%S+") do layer_of[name] = i end
end

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

local up, unplaced = {}, {}
for a, bs in pairs(edges) do
  if not layer_of[a] then unplaced[#unplaced + 1] = a end
  for b in pairs(bs) do
    if layer_of[a] and layer_of[b] and layer_of[b] < layer_of[a] then
      up[#up + 1] = ("%s (%s) includes %s (%s)"):format(a, LAYERS[layer_of[a]][1], b, LAYERS[layer_of[b]][1])
    end
  end
end
table.sort(up)
table.sort(unplaced)

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

for _, u in ipairs(up) do print("upward include: " .. u) end
for _, n in ipairs(unplaced) do print(("no layer: %s (give it a row in %s)"):format(n, arg[0])) end
for _, c in ipairs(cycles) do print("include cycle: " .. c) end
for _, b in ipairs(big) do print("over " .. MAX_LINES .. " lines: " .. b) end
if #up > 0 or #unplaced > 0 or #cycles > 0 or #big > 0 then os.exit(1) end
print(("layers: %d files in %d layers, every include points down, no cycle, none over %d lines")
  :format(#files, #LAYERS, MAX_LINES))
