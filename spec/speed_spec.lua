-- The codec's fast paths for code and shared data: one code blob per
-- prototype (a `function` expression run again sends no new code), closure
-- factories on the receiving side, and futures.constant.  Each group runs
-- with the prototype path on and off (core._proto_cache), so that the
-- public-API fallback is covered too.
local futures = require "futures"
local core = require "futures.core"

local KINDS = { "thread", "process" }

local function executor(kind, n)
  if kind == "thread" then return futures.ThreadPoolExecutor(n or 2) end
  return futures.ProcessPoolExecutor(n or 2)
end

for _, on in ipairs { true, false } do
  describe("code crossing (prototype path " .. (on and "on" or "off") .. ")", function()
    local was
    setup(function()
      was = core._proto_cache()
      if on then assert.is_true(was, "the prototype layout check failed on this Lua") end
      core._proto_cache(on)
    end)
    teardown(function() core._proto_cache(was) end)

    it("round-trips closures with upvalues of their own", function()
      local k = 5
      local f = core._roundtrip(function(x) k = k + x; return k end)
      assert.equal(6, f(1))
      assert.equal(8, f(2))
      assert.equal(5, k)
      local g = core._roundtrip(function() return function(y) return y * k end end)
      local h1, h2 = g(), g()
      assert.equal(10, h1(2))
      assert.are_not.equal(h1, h2)
    end)

    it("keeps upvalues shared between functions of one message, past 16 of them", function()
      local src = {}
      for i = 1, 20 do src[#src + 1] = ("local u%d = %d"):format(i, i) end
      local names = {}
      for i = 1, 20 do names[i] = "u" .. i end
      local all = table.concat(names, ", ")
      src[#src + 1] = ("local function bump() %s = %s end"):format(all,
        (table.concat(names, " + 1, ") .. " + 1"))
      src[#src + 1] = ("local function get() return %s end"):format(all)
      src[#src + 1] = "return bump, get"
      local bump, get = load(table.concat(src, "\n"))()
      local b2, g2 = core._roundtrip(bump, get)
      b2()
      local got = { g2() }
      for i = 1, 20 do assert.equal(i + 1, got[i]) end
      assert.equal(1, (get()))   -- the original's upvalues are untouched
    end)

    for _, kind in ipairs(KINDS) do
      describe(kind .. " pool", function()
        local ex
        setup(function() ex = executor(kind) end)
        teardown(function() ex:shutdown() end)

        it("runs an inline function made anew on every call", function()
          local fs = {}
          for i = 1, 200 do fs[i] = ex:submit(function(x) return x * 2 end, i) end
          for i = 1, 200 do assert.equal(2 * i, fs[i]:result()) end
        end)

        it("gives each call the upvalues its own closure captured", function()
          local fs = {}
          for i = 1, 200 do
            local k = i * 10
            fs[i] = ex:submit(function(x) return x + k end, i)
          end
          for i = 1, 200 do assert.equal(11 * i, fs[i]:result()) end
        end)

        it("copies upvalues: a call's changes stay in that call", function()
          local count = 0
          local fs = {}
          for i = 1, 50 do fs[i] = ex:submit(function() count = count + 1; return count end) end
          for i = 1, 50 do assert.equal(1, fs[i]:result()) end
          assert.equal(0, count)
        end)

        it("never serves the code of a collected prototype", function()
          -- Chunks loaded, sent and dropped: a freed prototype's address
          -- is reused by the next, which must still run its own code.
          for i = 1, 300 do
            local f = load(("local k = %d return function(x) return x + k end"):format(i))()
            local g = load(("return function() return %d end"):format(-i))()
            assert.equal(i + 1, ex:submit(f, 1):result())
            assert.equal(-i, ex:submit(g):result())
            if i % 7 == 0 then collectgarbage() end
          end
        end)

        it("sends more distinct functions than the caches hold", function()
          local fs = {}
          for i = 1, 1100 do
            local f = load(("local k = %d return function() return k end"):format(i))()
            fs[i] = ex:submit(f)
            if i % 100 == 0 then collectgarbage() end   -- addresses reused past a wipe
          end
          for i = 1, 1100 do assert.equal(i, fs[i]:result()) end
        end)

        it("holds nothing that a sent function's upvalues hold", function()
          local probe = setmetatable({}, { __mode = "v" })
          local function send()
            local big = { 1, 2, 3 }
            probe[1] = big
            return ex:submit(function() return #big end):result()
          end
          for _ = 1, 3 do assert.equal(3, send()) end
          collectgarbage()
          collectgarbage()
          assert.is_nil(probe[1])
        end)

        it("leaves a sent closure's siblings capturing as before", function()
          local function pair(start)
            local n = start
            return function(d) n = n + d; return n end, function() return n end
          end
          local bump, get = pair(1)
          assert.equal(3, ex:submit(bump, 2):result())
          assert.equal(1, ex:submit(get):result())
          local bump2, get2 = pair(10)   -- made after the code was sent
          assert.equal(11, bump2(1))
          assert.equal(11, get2())
          assert.equal(2, bump(1))
          assert.equal(2, get())
          assert.equal(12, ex:submit(bump2, 1):result())
        end)

        it("gives calls of code that cannot change its upvalues the values each sent", function()
          -- A worker may give such a call the closure of an earlier one
          -- that brought the same values; these look alike but are not.
          local got = {}
          local ks = table.pack(1, 1, 1.0, 1, 0.0, -0.0, 0.0, "a", "a", "b", false, nil, true)
          for i = 1, ks.n do
            local k = ks[i]
            got[i] = ex:submit(function() return math.type(k) or type(k), k, k == 0 and 1 / k end)
          end
          local want = { { "integer", 1 }, { "integer", 1 }, { "float", 1.0 }, { "integer", 1 },
            { "float", 0.0, math.huge }, { "float", -0.0, -math.huge }, { "float", 0.0, math.huge },
            { "string", "a" }, { "string", "a" }, { "string", "b" }, { "boolean", false },
            { "nil" }, { "boolean", true } }
          for i, w in ipairs(want) do
            local t, v, inv = got[i]:result()
            assert.equal(w[1], t)
            assert.equal(w[2], v)
            if w[3] then assert.equal(w[3], inv) end
          end
        end)

        it("gives each call its own upvalues when a function inside could change them", function()
          local k = 1
          local fs = {}
          for i = 1, 20 do
            fs[i] = ex:submit(function()
              if speed_spec_bump then speed_spec_bump() end   -- an earlier call's, not ours
              speed_spec_bump = function() k = k + 1 end
              return k
            end)
          end
          for i = 1, 20 do assert.equal(1, fs[i]:result()) end
        end)

        it("returns closures with upvalues made in the worker", function()
          local mk = function(k) return function(x) return x + k end end
          local a = ex:submit(mk, 3):result()
          local b = ex:submit(mk, 4):result()
          assert.equal(4, a(1))
          assert.equal(5, b(1))
        end)
      end)
    end
  end)
end

describe("futures.constant", function()
  it("returns its argument and refuses anything but a table", function()
    local t = {}
    assert.equal(t, futures.constant(t))
    assert.equal(t, futures.constant(t))   -- marking twice is harmless
    local ok, err = pcall(futures.constant, 5)
    assert.is_false(ok)
    assert.matches("bad argument #1", tostring(err))
    assert.is_false((pcall(futures.constant)))
  end)

  it("comes back from a round trip as the original table", function()
    local t = futures.constant { 1, 2, x = { y = 3 } }
    local a, b, c = core._roundtrip(t, { t }, function() return t end)
    assert.equal(t, a)
    assert.equal(t, b[1])
    assert.equal(t, c())
  end)

  it("reports what in it cannot cross, and can be sent once fixed", function()
    local t = futures.constant { ok = 1, bad = io.stdout }
    local ok, err = pcall(core._roundtrip, t)
    assert.is_false(ok)
    assert.matches("bad", tostring(err.message or err))
    t.bad = nil
    assert.equal(t, (core._roundtrip(t)))
  end)

  for _, on in ipairs { true, false } do
    for _, kind in ipairs(KINDS) do
      describe(kind .. " pool (prototype path " .. (on and "on" or "off") .. ")", function()
        local ex, was
        setup(function()
          was = core._proto_cache()
          core._proto_cache(on and was)
          ex = executor(kind, 1)   -- one worker: every call sees the same copy
        end)
        teardown(function()
          ex:shutdown()
          core._proto_cache(was)
        end)

        it("crosses once: later calls share the worker's copy", function()
          local t = futures.constant { n = 0 }
          local function bump(x) x.n = x.n + 1; return x.n end
          local got = {}
          for i = 1, 5 do got[i] = ex:submit(bump, t):result() end
          assert.same({ 1, 2, 3, 4, 5 }, got)
          assert.equal(0, t.n)   -- the caller's table never changed
        end)

        it("is one table wherever it is met in a call, as argument and upvalue", function()
          local t = futures.constant { 1, 2, 3 }
          -- g's upvalue t, its first argument and the table in the second
          local g = function(a, b) return rawequal(a, b[1]) and rawequal(a, t), #a end
          local same, n = ex:submit(g, t, { t }):result()
          assert.is_true(same)
          assert.equal(3, n)
        end)

        it("comes back from a worker as the caller's own table", function()
          local t = futures.constant { k = "v" }
          local back = ex:submit(function(x) return x, { x } end, t)
          local a, b = back:result()
          assert.equal(t, a)
          assert.equal(t, b[1])
        end)

        it("holds constants in constants, cycles and functions", function()
          local inner = futures.constant { 10, 20 }
          local outer = { inner = inner, inner2 = inner, f = function(x) return x * 2 end }
          outer.self = outer
          futures.constant(outer)
          local function probe(o, i)
            return rawequal(o.inner, i), rawequal(o.inner, o.inner2), rawequal(o.self, o), o.f(21), o.inner[2]
          end
          local a, b, c, d, e = ex:submit(probe, outer, inner):result()
          assert.is_true(a)
          assert.is_true(b)
          assert.is_true(c)
          assert.equal(42, d)
          assert.equal(20, e)
          -- and a second call finds them all again
          assert.is_true((ex:submit(probe, outer, inner):result()))
        end)

        it("copies a constant met inside another that it contains", function()
          local a = futures.constant { name = "a" }
          local b = futures.constant { name = "b", a = a }
          a.b = b   -- before either is sent
          local function names(x, y) return x.name, x.b.name, y.name, y.a.name end
          assert.same({ "a", "b", "b", "a" }, { ex:submit(names, a, b):result() })
        end)

        it("keeps a metatable and a class on the copy", function()
          local mt = { __index = function(_, k) return k .. "!" end }
          local t = futures.constant(setmetatable({}, mt))
          assert.equal("hi!", ex:submit(function(x) return x.hi end, t):result())
        end)
      end)
    end
  end
end)
