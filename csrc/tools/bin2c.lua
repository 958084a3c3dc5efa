-- Writes a Lua source file as a C array, so the library can open its Lua
-- front without a filesystem search: lua5.4 bin2c.lua NAME in.lua out.c
local name, input, output = ...
local src = assert(io.open(input, "rb")):read("a")
local out = assert(io.open(output, "wb"))
out:write("/* generated from ", input, " by csrc/tools/bin2c.lua: do not edit */\n")
out:write("#include <stddef.h>\n")
out:write("const unsigned char ", name, "[] = {\n")
for i = 1, #src, 16 do
  local bytes = { src:byte(i, math.min(i + 15, #src)) }
  for j = 1, #bytes do bytes[j] = tostring(bytes[j]) end
  out:write("  ", table.concat(bytes, ","), ",\n")
end
out:write("};\nconst size_t ", name, "_len = ", tostring(#src), ";\n")
out:close()
