-- What crosses between states (docs/reference.md): every rule, through the engine's
-- test hook.  core._roundtrip(...) copies its arguments into a fresh
-- lua_State and back (two encodes, two decodes) and returns the copies;
-- what needs a task's own function or a worker's modules runs in pools.
local futures = require "futures"
local core = require "futures.core"
local rt = core._roundtrip

-- The error a failing round trip raises, checked to be a TransferError.
local function transfer_error(...)
  local ok, e = pcall(rt, ...)
  assert.is_false(ok, "the round trip should have failed")
  assert.is_true(futures.TransferError:is(e), "not a TransferError: " .. tostring(e))
  assert.equal("string", type(e.message))
  assert.equal(e.where .. " futures.TransferError: " .. e.message, tostring(e))
  return e.message
end

local function contains(haystack, needle)
  assert(haystack:find(needle, 1, true), ("%q does not contain %q"):format(haystack, needle))
end

-- "spec/transfer_spec.lua:42": where a function was written, as errors say.
local function where(f)
  local info = debug.getinfo(f, "S")
  return info.short_src .. ":" .. info.linedefined
end

describe("transfer", function()

  describe("plain values", function()
    it("copies nil and booleans, and keeps the count of values", function()
      assert.same({ n = 0 }, table.pack(rt()))
      local t = table.pack(rt(nil, true, false, nil))
      assert.equal(4, t.n)
      assert.is_nil(t[1]); assert.is_true(t[2]); assert.is_false(t[3]); assert.is_nil(t[4])
    end)

    it("keeps the integer and float subtypes", function()
      local vals = { 0, 1, -1, 3, 0.0, 1.0, -1.0, 3.5, 2^53, 2^63, 1e308, 5e-324,
                     math.maxinteger, math.mininteger, math.maxinteger - 1, math.mininteger + 1,
                     127, 128, -64, -65, 1 << 62, -(1 << 62) }
      local got = table.pack(rt(table.unpack(vals)))
      assert.equal(#vals, got.n)
      for i, v in ipairs(vals) do
        assert.equal(math.type(v), math.type(got[i]), "value #" .. i)
        assert.is_true(v == got[i], "value #" .. i .. ": " .. tostring(v))
      end
      assert.equal(math.maxinteger, (rt(math.maxinteger)))
      assert.equal(math.mininteger, (rt(math.mininteger)))
      assert.equal("integer", math.type((rt(math.mininteger))))
    end)

    it("copies NaN, infinities and negative zero", function()
      local nan, inf, ninf, nz = rt(0/0, math.huge, -math.huge, -0.0)
      assert.is_true(nan ~= nan)
      assert.equal("float", math.type(nan))
      assert.equal(math.huge, inf)
      assert.equal(-math.huge, ninf)
      assert.equal("float", math.type(nz))
      assert.equal(0.0, nz)
      assert.equal(-math.huge, 1 / nz)
      assert.equal(math.huge, 1 / (rt(0.0)))
    end)

    it("copies strings of any bytes", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      local a, b, c, d, e = rt(all, "", "a\0b", "\0", all:reverse())
      assert.equal(all, a)
      assert.equal(256, #a)
      assert.equal("", b)
      assert.equal("a\0b", c)
      assert.equal(3, #c)
      assert.equal("\0", d)
      assert.equal(all:reverse(), e)
    end)

    it("copies a 16 MiB string", function()
      local s = string.rep("\0\1\2\255 futures ...", 1 << 20):sub(1, 16 * 1024 * 1024)
      assert.equal(16 * 1024 * 1024, #s)
      local c = rt(s)
      assert.equal(#s, #c)
      assert.is_true(s == c)
    end)

    it("copies light userdata (the hook allows what threads allow)", function()
      local lud = debug.upvalueid(function() return rt end, 1)
      assert.equal("userdata", type(lud))
      local c = rt(lud)
      assert.equal(lud, c)
      assert.same({ lud }, rt({ lud }))
    end)
  end)

  describe("tables", function()
    it("copies nested tables", function()
      local t = { 1, 2.5, "three", { 4, { 5, { six = 6 } } }, x = { y = { z = true } },
                  [0] = "zero", [-1] = "minus", [1.5] = "float key", [true] = false }
      local c = rt(t)
      assert.are_not.equal(t, c)
      assert.same(t, c)
      assert.equal("float", math.type(c[2]))
      assert.equal("float key", c[1.5])
    end)

    it("keeps arrays with holes", function()
      local t = { 1, nil, 3, nil, 5, [10] = 10 }
      local c = rt(t)
      for i = 1, 10 do assert.equal(t[i], c[i]) end
    end)

    it("keeps shared references as one table", function()
      local shared = { "shared" }
      local t = { a = shared, b = shared, list = { shared, shared } }
      local c = rt(t)
      assert.equal(c.a, c.b)
      assert.equal(c.a, c.list[1])
      assert.equal(c.a, c.list[2])
      assert.are_not.equal(shared, c.a)
      -- and across the arguments of one call
      local x, y = rt(shared, { shared })
      assert.equal(x, y[1])
    end)

    it("keeps cycles", function()
      local t = { name = "root" }
      t.self = t
      t.child = { parent = t }
      t.child.child = t.child
      local c = rt(t)
      assert.equal(c, c.self)
      assert.equal(c, c.child.parent)
      assert.equal(c.child, c.child.child)
      assert.equal("root", c.name)
    end)

    it("copies tables used as keys", function()
      local k1, k2 = { "k1" }, { "k2" }
      local t = { [k1] = "one", [k2] = k1, [{ "lonely" }] = 3 }
      t[t] = t
      local c = rt(t)
      local n, found = 0, {}
      for k, v in pairs(c) do
        n = n + 1
        assert.equal("table", type(k))
        if k == c then assert.equal(c, v)
        else found[k[1]] = { k = k, v = v } end
      end
      assert.equal(4, n)
      assert.equal("one", found.k1.v)
      assert.equal(found.k1.k, found.k2.v)
      assert.equal(3, found.lonely.v)
    end)

    it("copies a metatable with its table, one copy for many objects", function()
      local Point = {}
      Point.__index = Point
      function Point.new(x, y) return setmetatable({ x = x, y = y }, Point) end
      function Point:norm2() return self.x * self.x + self.y * self.y end
      Point.__add = function(a, b) return Point.new(a.x + b.x, a.y + b.y) end
      local pts = {}
      for i = 1, 50 do pts[i] = Point.new(i, -i) end
      local c = rt(pts)
      local mt = getmetatable(c[1])
      assert.are_not.equal(Point, mt)
      for i = 1, 50 do
        assert.equal(mt, getmetatable(c[i]))
        assert.equal(2 * i * i, c[i]:norm2())
      end
      local s = c[1] + c[2]
      assert.equal(mt, getmetatable(s))
      assert.equal(3, s.x)
    end)

    it("keeps __index functions and other metamethods working", function()
      local calls = 0
      local proxy = setmetatable({}, {
        __index = function(_, k) calls = calls + 1; return k .. "!" end,
        __len = function() return 42 end,
        __tostring = function() return "proxy" end,
      })
      local c = rt(proxy)
      assert.equal("hi!", c.hi)
      assert.equal(42, #c)
      assert.equal("proxy", tostring(c))
      assert.equal(0, calls)
    end)

    it("sets a metatable only once it is complete (a __gc still counts)", function()
      -- The instances sit in their class's array part, which travels before
      -- its __gc field: a metatable set too early would not mark them.
      local Class = {}
      Class.__index = Class
      for i = 1, 5 do Class[i] = setmetatable({ i = i }, Class) end
      Class.__gc = function() _G.transfer_spec_gc = (_G.transfer_spec_gc or 0) + 1 end
      local c = rt(Class)
      Class.__gc = nil
      assert.equal(c, getmetatable(c[1]))
      collectgarbage(); collectgarbage()
      _G.transfer_spec_gc = 0
      c = nil
      collectgarbage(); collectgarbage()
      local n = _G.transfer_spec_gc
      _G.transfer_spec_gc = nil
      assert.equal(5, n)
    end)

    it("copies a table with 100,000 hash keys", function()
      local t = {}
      for i = 1, 100000 do t["k" .. i] = i end
      local c = rt(t)
      local n = 0
      for k, v in pairs(c) do n = n + 1; assert(t[k] == v) end
      assert.equal(100000, n)
    end)

    it("copies 10,000 arguments", function()
      local args = {}
      for i = 1, 10000 do args[i] = (i % 3 == 0) and { i } or i end
      local got = table.pack(rt(table.unpack(args, 1, 10000)))
      assert.equal(10000, got.n)
      for i = 1, 10000 do
        if i % 3 == 0 then assert.equal(i, got[i][1]) else assert.equal(i, got[i]) end
      end
    end)

    it("copies 1000 levels of nesting", function()
      local t = {}
      local cur = t
      for i = 1, 1000 do cur.next = { depth = i }; cur = cur.next end
      local c = rt(t)
      local d = 0
      while c.next do c = c.next; d = d + 1 end
      assert.equal(1000, d)
      assert.equal(1000, c.depth)
    end)

    it("refuses 100,000 levels of nesting with a clear error", function()
      local t = {}
      local cur = t
      for _ = 1, 100000 do cur[1] = {}; cur = cur[1] end
      local msg = transfer_error(t)
      contains(msg, "argument #1: ...[1][1]")
      contains(msg, "[1] is nested too deeply")
      -- through keys and metatables as well
      local k = {}
      for _ = 1, 100000 do k = { [k] = true } end
      contains(transfer_error(k), "nested too deeply")
      local m = {}
      for _ = 1, 100000 do m = setmetatable({}, m) end
      contains(transfer_error(m), "nested too deeply")
    end)

    it("refuses 100,000 nested closures with a clear error", function()
      local f = function() return 0 end
      for _ = 1, 100000 do
        local g = f
        f = function() return g() + 1 end
      end
      contains(transfer_error(f), "nested too deeply")
    end)
  end)

  -- Arrays of numbers and booleans are read from and written into array
  -- parts directly when the layout check passed, and big ones cross as one
  -- block that the receiving table adopts; every case runs each way.
  local modes = { { direct = true, adopt = true, name = "direct access on, blocks adopted" },
                  { direct = true, adopt = false, name = "direct access on, blocks copied" },
                  { direct = false, adopt = false, name = "direct access off" } }
  for _, mode in ipairs(modes) do
    local direct = mode.direct
    describe("arrays of numbers and booleans (" .. mode.name .. ")", function()
      local was, was_adopt
      setup(function()
        was, was_adopt = core._direct_arrays(), core._adopt_arrays()
        if direct then assert.is_true(was, "the layout check failed on this Lua") end
        if mode.adopt then assert.is_true(was_adopt, "the adoption check failed on this Lua") end
        core._direct_arrays(direct)
        core._adopt_arrays(mode.adopt)
      end)
      teardown(function()
        core._direct_arrays(was)
        core._adopt_arrays(was_adopt)
      end)

      -- Same keys, same values, same number subtypes (no cycles here);
      -- plain comparisons, an assertion only for what differs.
      local function same(a, b, path)
        path = path or "t"
        if type(a) ~= type(b) then assert.equal(type(a), type(b), path) end
        if type(a) == "number" then
          local ok = math.type(a) == math.type(b) and (a ~= a and b ~= b or a == b and 1 / a == 1 / b)
          if not ok then assert.equal(tostring(a) .. " " .. math.type(a), tostring(b) .. " " .. math.type(b), path) end
        elseif type(a) == "table" then
          for k, v in pairs(a) do same(v, b[k], path .. "[" .. tostring(k) .. "]") end
          for k in pairs(b) do if a[k] == nil then error(path .. ": extra key " .. tostring(k)) end end
        elseif a ~= b then
          assert.equal(a, b, path)
        end
      end

      it("keep every value and subtype of a long mixed array", function()
        local specials = { 0, -0.0, 0.0, 0/0, math.huge, -math.huge, math.maxinteger,
                           math.mininteger, 2^53, 1.0, -1, 127, 128, 5e-324 }
        local t = {}
        for i = 1, 100000 do t[i] = i % 7 == 0 and specials[i % #specials + 1] or i * 0.25 end
        same(t, rt(t))
      end)

      it("keep other values among the numbers, first, last and in runs", function()
        local shared = { "s" }
        local t = { "first", 1, 2.5, shared, 3, true, 4.5, false, shared, 5, "last" }
        local c = rt(t)
        same(t, c)
        assert.equal(c[4], c[9])
        local only = { 1.5, 2, 3.5, { 4 } }
        same(only, rt(only))
      end)

      it("keep booleans and holes among the numbers", function()
        local t = { true, false, 1, nil, 2.5, true, nil, nil, false, -3 }
        same(t, rt(t))
        local flags = {}
        for i = 1, 10000 do flags[i] = i % 3 == 0 end
        same(flags, rt(flags))
      end)

      it("keep holes, keys past the border and hash keys", function()
        local t = { 1.5, 2, nil, 4.5, nil, nil, 7, [20] = 20.5, x = 1, [0] = 0.5, [-3] = 3 }
        same(t, rt(t))
        local sparse = {}
        for i = 1, 64 do sparse[i] = i end
        for i = 40, 64, 3 do sparse[i] = nil end
        sparse.name = "sparse"
        same(sparse, rt(sparse))
      end)

      it("keep arrays held in the hash part", function()
        local reversed = {}
        for i = 1000, 1, -1 do reversed[i] = i + 0.5 end
        same(reversed, rt(reversed))
        local explicit = { [1] = 1.5, [2] = 2, [3] = 3.5, y = "y" }
        same(explicit, rt(explicit))
        local grown = { 1, 2, 3, 4 }
        for i = 5, 300 do grown[i] = i * 1.5 end
        grown[600] = 600
        same(grown, rt(grown))
      end)

      it("keep slots past a length the table cached", function()
        local t = {}
        for i = 1, 16 do t[i] = i + 0.5 end
        t[12], t[15], t[16] = nil, nil, nil
        local _ = #t   -- Lua 5.4 remembers a border as a hint
        same(t, rt(t))
        assert.equal(13.5, (rt(t))[13])
      end)

      it("copy random tables exactly", function()
        local rng = math.random
        math.randomseed(7)
        local values = { function() return rng(-1000, 1000) end, function() return rng() * 100 end,
                         function() return "s" .. rng(9) end, function() return rng() < 0.5 end,
                         function() return { rng() } end, function() return nil end }
        for _ = 1, 200 do
          local t, n = {}, rng(0, 300)
          local order = {}
          for i = 1, n do order[i] = i end
          if rng() < 0.3 then for i = n, 2, -1 do local j = rng(i); order[i], order[j] = order[j], order[i] end end
          for _, i in ipairs(order) do
            t[i] = rng() < 0.85 and (rng() < 0.5 and i or i + 0.5) or values[rng(#values)]()
          end
          for _ = 1, rng(0, 3) do t[rng(n + 1, n + 50)] = rng() end
          if rng() < 0.3 then t.key = "v" end
          same(t, rt(t))
        end
      end)

      it("keep big arrays whole: holes, a hash part, a metatable, shared twice", function()
        local t = setmetatable({ name = "big", [0] = 0.5 }, { __index = function() return "mt" end })
        for i = 1, 20000 do t[i] = i % 5 == 0 and i or i % 5 == 1 and i + 0.25 or i % 5 == 2 end
        t[17], t[19999] = nil, nil
        local a, b, c = rt(t, t, { t })
        same(t, a)
        assert.equal(a, b)
        assert.equal(a, c[1])
        assert.equal("mt", a.missing)
        assert.equal("big", a.name)
      end)

      it("send a big array with a string in it the usual way", function()
        local t = {}
        for i = 1, 10000 do t[i] = i + 0.5 end
        t[5000] = "five thousand"
        same(t, rt(t))
      end)

      it("give back big arrays that grow, shrink and are collected like any table", function()
        local t = {}
        for i = 1, 50000 do t[i] = i + 0.5 end
        collectgarbage()
        collectgarbage("stop")
        local before = collectgarbage("count")
        local c = rt(t)
        local grew = collectgarbage("count") - before
        collectgarbage("restart")
        assert.is_true(grew >= 50000 * 16 / 1024, "the copy is counted: " .. grew .. " KB")
        for i = 50001, 70000 do c[i] = i end
        assert.equal(70000, #c)
        assert.equal(50000.5, c[50000])
        for i = 70000, 10, -1 do c[i] = nil end
        assert.equal(9, #c)
        c = nil
        local heavy = collectgarbage("count")
        collectgarbage()
        collectgarbage()
        assert.is_true(collectgarbage("count") < heavy - 500, "the copy is freed")
      end)
    end)
  end

  describe("functions", function()
    it("copies a Lua function with its upvalues", function()
      local base, names = 10, { "a", "b" }
      local function f(x) return base + x, names[2] end
      local c = rt(f)
      assert.are_not.equal(f, c)
      local r1, r2 = c(5)
      assert.equal(15, r1)
      assert.equal("b", r2)
    end)

    it("copies upvalues: changing the copy's upvalue leaves the original alone", function()
      local n, t = 0, { count = 0 }
      local function bump() n = n + 1; t.count = t.count + 1; return n end
      local c = rt(bump)
      assert.equal(1, c())
      assert.equal(2, c())
      assert.equal(0, n)
      assert.equal(0, t.count)
      assert.equal(1, bump())
    end)

    it("copies recursive local functions", function()
      local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end
      local c = rt(fact)
      assert.equal(3628800, c(10))
      local _, up = debug.getupvalue(c, 1)
      assert.equal(c, up)
    end)

    it("keeps closures that share an upvalue sharing it", function()
      local function counter()
        local n = 0
        return function() n = n + 1; return n end, function() return n end
      end
      local inc, get = counter()
      local t = rt({ inc = inc, get = get })
      assert.equal(0, t.get())
      t.inc(); t.inc()
      assert.equal(2, t.get())
      assert.equal(0, get())
      -- also when they travel as separate arguments of one call
      local inc2, get2 = rt(inc, get)
      inc2()
      assert.equal(1, get2())
      -- and when the shared value is reached through the other closure
      local shared = {}
      local a = function() return shared end
      shared.b = function() shared = "changed" end
      local ca = rt(a)
      assert.equal("table", type(ca()))
      ca().b()
      assert.equal("changed", ca())
      assert.equal("table", type(shared))
    end)

    it("sends the same function many times as one copy per call", function()
      local function f(x) return x * 2 end
      local c1, c2 = rt(f, f)
      assert.equal(c1, c2)
      for _ = 1, 100 do assert.equal(4, rt(f)(2)) end
    end)

    it("binds _ENV to the receiver's globals", function()
      -- a custom environment does not travel: the copy sees our globals
      local env = { secret = "custom" }
      local f = load("return secret", "=f", "t", env)
      assert.equal("custom", f())
      _G.transfer_spec_secret = nil
      local c = rt(f)
      assert.is_nil(c())
      local _, e = debug.getupvalue(c, 1)
      assert.equal(_G, e)
      -- also when _ENV is a local of the enclosing code
      local g
      do
        local _ENV = { tostring = tostring, x = 1 }
        g = function() return tostring(x) end
      end
      local cg = rt(g)
      _G.x = nil
      assert.equal("nil", cg())
    end)

    it("binds _ENV in the receiving state (a global set only here is nil there)", function()
      -- The copy held by the private state runs there as a finalizer, when
      -- that state closes, and reports what it sees through a file.
      local path = os.tmpname()
      _G.transfer_spec_only_here = "caller's"
      local probe = function()
        local fh = io.open(path, "w")
        fh:write(tostring(transfer_spec_only_here))
        fh:close()
      end
      local copy = rt(setmetatable({}, { __gc = probe }))
      local fh = io.open(path, "r")
      local seen = fh and fh:read("a")
      if fh then fh:close() end
      os.remove(path)
      _G.transfer_spec_only_here = nil
      getmetatable(copy).__gc = nil
      assert.equal("nil", seen)
    end)

    it("sends C functions by name", function()
      local sqrt, fmt, pr, ins = rt(math.sqrt, string.format, print, table.insert)
      assert.equal(math.sqrt, sqrt)
      assert.equal(string.format, fmt)
      assert.equal(print, pr)
      assert.equal(table.insert, ins)
      assert.same({ f = math.floor }, rt({ f = math.floor }))
      local function uses() return math.sqrt(16) end
      assert.equal(4.0, rt(uses)())
      -- a C function of a loaded C module
      assert.equal(core.monotonic, (rt(core.monotonic)))
    end)

    it("finds a C function that came into package.loaded after an earlier call", function()
      local saved = package.loaded.utf8
      package.loaded.utf8 = {}   -- same number of modules, other contents
      local ok, e = pcall(rt, {})
      package.loaded.utf8 = saved
      assert(ok, e)
      assert.equal(utf8.char, (rt(utf8.char)))
    end)

    it("sends loaded modules by name", function()
      local s, m, f, g = rt(string, math, futures, _G)
      assert.equal(string, s)
      assert.equal(math, m)
      assert.equal(futures, f)
      assert.equal(_G, g)
      assert.equal(futures, rt({ futures })[1])
      -- a module held in an upvalue
      local fut = require "futures"
      local function ver() return fut._VERSION, fut end
      local c = rt(ver)
      local v, mod = c()
      assert.equal(futures._VERSION, v)
      assert.equal(futures, mod)
    end)
  end)

  describe("values that cannot cross", function()
    it("name the path of a userdata", function()
      contains(transfer_error(1, { 1, 2, { conn = io.stdout } }),
               "argument #2: [3].conn is a userdata (FILE*)")
      contains(transfer_error(io.stderr), "argument #1 is a userdata (FILE*)")
      contains(transfer_error({ a = { ["not an id"] = { io.stdout } } }),
               'argument #1: a["not an id"][1] is a userdata (FILE*)')
    end)

    it("refuse coroutines", function()
      contains(transfer_error(nil, coroutine.create(print)), "argument #2 is a coroutine")
      contains(transfer_error({ co = coroutine.running() }), "argument #1: co is a coroutine")
    end)

    it("refuse C functions with no name", function()
      local iter = string.gmatch("a", "a")
      local msg = transfer_error({ next = iter })
      contains(msg, "argument #1: next is a C function")
      contains(msg, "package.loaded")
    end)

    it("name the upvalue that holds a userdata, and where its function was written", function()
      local conn = io.stdout
      local function send() return conn end
      local at = where(send)
      assert.equal("argument #1: upvalue 'conn' of function (" .. at .. ") is a userdata (FILE*)",
                   transfer_error(send))
      assert.equal("argument #2: cb: upvalue 'conn' of function (" .. at .. ") is a userdata (FILE*)",
                   transfer_error(7, { cb = send }))
      -- a path inside the upvalue starts after the function
      local cfg = { out = { conn } }
      local function report() return cfg end
      assert.equal("argument #1: upvalue 'cfg' of function (" .. where(report) .. "): out[1] is a userdata (FILE*)",
                   transfer_error(report))
      -- and a function reached through a metatable or a key
      assert.equal("argument #1: (metatable).__index: upvalue 'conn' of function (" .. at .. ") is a userdata (FILE*)",
                   transfer_error(setmetatable({}, { __index = send })))
      assert.equal("argument #1: (key [<function>]): upvalue 'conn' of function (" .. at .. ") is a userdata (FILE*)",
                   transfer_error({ [send] = true }))
    end)

    it("name a function by its global or module name when it has one", function()
      local conn = io.stdout
      _G.transfer_spec_send = function() return conn end
      local at = where(_G.transfer_spec_send)
      local ok, msg = pcall(transfer_error, { _G.transfer_spec_send })
      _G.transfer_spec_send = nil
      assert(ok, msg)
      assert.equal("argument #1: [1]: upvalue 'conn' of function 'transfer_spec_send' (" .. at .. ") is a userdata (FILE*)", msg)
      package.loaded.transfer_spec_mod = { send = function() return conn end }
      at = where(package.loaded.transfer_spec_mod.send)
      ok, msg = pcall(transfer_error, package.loaded.transfer_spec_mod.send)
      package.loaded.transfer_spec_mod = nil
      assert(ok, msg)
      assert.equal("argument #1: upvalue 'conn' of function 'transfer_spec_mod.send' (" .. at .. ") is a userdata (FILE*)", msg)
    end)

    it("name a userdata in a metatable", function()
      local msg = transfer_error(setmetatable({}, { __index = { out = io.stdout } }))
      contains(msg, "argument #1")
      contains(msg, "metatable")
      contains(msg, "__index.out is a userdata (FILE*)")
    end)

    it("name a userdata used as a key", function()
      local msg = transfer_error({ [io.stdout] = true })
      contains(msg, "argument #1")
      contains(msg, "key")
      contains(msg, "userdata (FILE*)")
      msg = transfer_error({ [{ f = io.stdout }] = true })
      contains(msg, "key")
      contains(msg, "f is a userdata (FILE*)")
    end)

    it("keep a long path readable", function()
      local t = {}
      local cur = t
      for i = 1, 300 do cur.field_with_a_long_name = {}; cur = cur.field_with_a_long_name end
      cur.bad = io.stdout
      local msg = transfer_error(t)
      contains(msg, "argument #1: ")
      contains(msg, "...")
      contains(msg, ".bad is a userdata (FILE*)")
      assert.is_true(#msg < 300)
    end)

    it("leave the caller's state usable", function()
      local top = select("#", pcall(rt, io.stdout))
      assert.equal(2, top)
      assert.equal(3, select("#", rt(1, 2, 3)))
    end)
  end)

  -- What only a pool shows: the task's own function, and workers that
  -- load modules and classes themselves.
  describe("through pools", function()
    local LONG = require("helpers").LONG
    local dir, saved_path
    -- A module on package.path (pools take the path when they are made).
    -- A class in it exists only where a global says so: in the caller.
    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      local fh = assert(io.open(dir .. "/transfer_spec_geom.lua", "w"))
      fh:write([[
        local geom = { defaults = { scale = 1 } }
        geom.Vec = {}
        geom.Vec.__index = geom.Vec
        function geom.Vec.new(x, y) return setmetatable({ x = x, y = y }, geom.Vec) end
        function geom.Vec:len2() return self.x * self.x + self.y * self.y end
        if rawget(_G, "transfer_spec_caller") then geom.Only = {} end
        return geom
      ]])
      fh:close()
      saved_path = package.path
      package.path = dir .. "/?.lua;" .. package.path
      _G.transfer_spec_caller = true
    end)
    teardown(function()
      package.path = saved_path
      package.loaded.transfer_spec_geom = nil
      _G.transfer_spec_caller = nil
      os.remove(dir .. "/transfer_spec_geom.lua")
      os.remove(dir)
    end)

    local function submit_error(ex, ...)
      local e = ex:submit(...):exception(LONG)
      assert.is_true(futures.TransferError:is(e), "not a TransferError: " .. tostring(e))
      return e.message
    end

    describe("errors that say which function", function()
      local ex
      setup(function() ex = futures.ThreadPoolExecutor(1) end)
      teardown(function() ex:shutdown() end)

      it("name the task function's upvalue without a label", function()
        local log = io.stdout
        local function work() return log end
        assert.equal("upvalue 'log' of function (" .. where(work) .. ") is a userdata (FILE*)",
                     submit_error(ex, work))
        _G.transfer_spec_work = work
        local ok, msg = pcall(submit_error, ex, work)
        _G.transfer_spec_work = nil
        assert(ok, msg)
        assert.equal("upvalue 'log' of function 'transfer_spec_work' (" .. where(work) .. ") is a userdata (FILE*)", msg)
      end)

      it("name a function inside an argument table by its path", function()
        local log = io.stdout
        local function cb() return log end
        assert.equal("argument #2: [1]: upvalue 'log' of function (" .. where(cb) .. ") is a userdata (FILE*)",
                     submit_error(ex, print, 1, { cb }))
        assert.equal("argument #1: on.done: upvalue 'log' of function (" .. where(cb) .. ") is a userdata (FILE*)",
                     submit_error(ex, print, { on = { done = cb } }))
      end)

      it("name a nested closure's upvalue after the upvalue that holds the closure", function()
        local log = io.stdout
        local function helper() return log end
        local function work() return helper() end
        assert.equal("upvalue 'helper' of function (" .. where(work) .. "): upvalue 'log' of function ("
                     .. where(helper) .. ") is a userdata (FILE*)", submit_error(ex, work))
        local opts = { cb = helper }
        local function run() return opts end
        assert.equal("upvalue 'opts' of function (" .. where(run) .. "): cb: upvalue 'log' of function ("
                     .. where(helper) .. ") is a userdata (FILE*)", submit_error(ex, run))
      end)
    end)

    for _, kind in ipairs({ "ThreadPoolExecutor", "ProcessPoolExecutor" }) do
      describe("in a " .. kind, function()
        local ex
        setup(function() ex = futures[kind](1) end)
        teardown(function() ex:shutdown() end)

        it("report a module the worker cannot load with require's whole message", function()
          package.loaded.transfer_spec_nowhere = {}
          local f = ex:submit(function(m) return m end, package.loaded.transfer_spec_nowhere)
          package.loaded.transfer_spec_nowhere = nil
          local _, why = pcall(require, "transfer_spec_nowhere")
          local msg = f:exception(LONG).message
          assert.equal("cannot load module 'transfer_spec_nowhere' here: " .. why, msg)
          assert.is_true(#msg > 256)
          contains(msg, "module 'transfer_spec_nowhere' not found:")
          local last = why:match("[^\n]*$")
          assert.equal(last, msg:sub(-#last))
        end)

        it("send a class held by a loaded module by name, both ways", function()
          local geom = require "transfer_spec_geom"
          local f = ex:submit(function(v)
            local g = require "transfer_spec_geom"
            return getmetatable(v) == g.Vec, g.Vec.new(v.x + 1, v.y), v
          end, geom.Vec.new(3, 4))
          local same_there, made_there, back = f:result(LONG)
          assert.is_true(same_there)
          assert.equal(geom.Vec, getmetatable(made_there))
          assert.equal(geom.Vec, getmetatable(back))
          assert.equal(25, back:len2())
          local again = ex:submit(function() return require("transfer_spec_geom").Vec.new(0, 1) end):result(LONG)
          assert.equal(getmetatable(made_there), getmetatable(again))
          -- many objects of one class, and the class itself as a plain value: a copy
          local list = {}
          for i = 1, 100 do list[i] = geom.Vec.new(i, 0) end
          local copy, class = ex:submit(function(l, c) return l, c end, list, geom.Vec):result(LONG)
          for i = 1, 100 do assert.equal(geom.Vec, getmetatable(copy[i])) end
          assert.are_not.equal(geom.Vec, class)
          assert.equal(25, class.len2({ x = 3, y = 4 }))
        end)

        it("copy the plain tables of a module", function()
          local geom = require "transfer_spec_geom"
          local d = ex:submit(function(t) t.scale = 2; return t end, geom.defaults):result(LONG)
          assert.are_not.equal(geom.defaults, d)
          assert.equal(2, d.scale)
          assert.equal(1, geom.defaults.scale)
        end)

        it("fail with a clear TransferError for a class the worker's module lacks", function()
          local geom = require "transfer_spec_geom"
          assert.is_table(geom.Only)
          assert.equal("metatable transfer_spec_geom.Only is not loaded here",
                       submit_error(ex, function(v) return v end, setmetatable({}, geom.Only)))
        end)
      end)
    end
  end)
end)

-- A submitted call of a function whose upvalues are _ENV or scalars, with
-- scalar arguments, skips the encoder's set-up (csrc/callenc.c): the same
-- bytes, written by a second writer, so they are compared here byte for
-- byte.
describe("the short cut for a submitted call", function()
  local encode_call = core._encode_call

  local function same_bytes(...)
    local full, fast, same_blobs = encode_call(...)
    assert.is_string(fast, "the short cut took no call")
    assert.equal(full, fast)
    assert.is_true(same_blobs)
  end

  local function left_alone(...)
    local full, fast = encode_call(...)
    assert.is_string(full)
    assert.is_false(fast)
  end

  local function f(x) return x end
  local function g() return print end   -- _ENV, its one upvalue

  it("writes the encoder's bytes", function()
    same_bytes(f)
    same_bytes(f, 1)
    same_bytes(g, 0, -1, 127, 128, -65, math.maxinteger, math.mininteger)
    same_bytes(f, 0.5, -0.0, 1 / 0, -1 / 0, 0 / 0, 2 ^ 53)
    same_bytes(f, true, false, nil, nil)
    same_bytes(g, "", "short", ("x"):rep(31), "a\0b")
    same_bytes(function(...) return ... end, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
    do
      local _ENV = { print = print }   -- a local named _ENV still goes as ENV
      same_bytes(function() return print end, 1)
    end
    local k, s, t, no, x = 1, "seven", true, nil, 0.25
    same_bytes(function(y) return y + k end, 1)
    same_bytes(function() return print, k, s, t, no, x end, "arg")
  end)

  it("leaves every other call to the encoder", function()
    local t, long = {}, ("x"):rep(32)
    left_alone(print, 1)
    left_alone(function() return t end, 1)
    left_alone(function() return long end, 1)
    local a, b = 1, 2
    local joined = function() return a, b end
    debug.upvaluejoin(joined, 2, joined, 1)   -- the encoder writes a JOIN
    left_alone(joined)
    local u1, u2, u3, u4, u5, u6, u7, u8, u9 = 1, 2, 3, 4, 5, 6, 7, 8, 9
    left_alone(function() return u1, u2, u3, u4, u5, u6, u7, u8, u9 end)   -- more than it takes
    same_bytes(function() return u1, u2, u3, u4, u5, u6, u7, u8 end)
    left_alone(f, {})
    left_alone(f, ("x"):rep(32))   -- long enough to get a ref
    left_alone(f, f)
    local many = {}
    for i = 1, 100 do many[i] = i * 1e9 end
    left_alone(f, table.unpack(many))
  end)

  it("is off with the scalar short cuts", function()
    local was = core._queue_fast()
    core._queue_fast(false)
    local ok, full, fast = pcall(encode_call, f, 1)
    core._queue_fast(was)
    assert.is_true(ok, full)
    assert.is_false(fast)
  end)
end)
