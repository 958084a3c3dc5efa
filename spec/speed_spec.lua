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
          end
          for i = 1, 1100 do assert.equal(i, fs[i]:result()) end
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
