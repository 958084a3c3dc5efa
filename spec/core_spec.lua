-- The module's small functions: loading, version, clocks, cpu count.
local futures = require "futures"

describe("the module", function()
  it("loads the Lua front and the C core", function()
    assert.is_table(futures)
    assert.is_table(require "futures.core")
    assert.matches("^futures %d+%.%d+%.%d+", futures._VERSION)
  end)

  -- Dynamic TLS (a __tls_get_addr call) in a dlopen'd module trips the
  -- sanitizer runtimes up to GCC 13 now and then (google/sanitizers#1322):
  -- the C core keeps its thread-locals in static TLS.
  it("keeps its thread-locals in static TLS", function()
    local so = assert(package.searchpath("futures.core", package.cpath))
    local nm = assert(io.popen("nm -D " .. so .. " 2>&1"))
    local symbols = nm:read("a")
    nm:close()
    assert.matches("luaopen_futures_core", symbols)
    assert.is_nil(symbols:find("__tls_get_addr", 1, true))
  end)

  it("counts the CPUs", function()
    local n = futures.cpu_count()
    assert.equal("integer", math.type(n))
    assert.is_true(n >= 1)
  end)

  it("has a monotonic clock with sub-microsecond resolution", function()
    local a = futures.monotonic()
    local b = futures.monotonic()
    assert.equal("float", math.type(a))
    assert.is_true(b >= a)
    -- readings carry digits below the microsecond (not a coarse tick)
    local fine = false
    for _ = 1, 20 do
      local t = futures.monotonic() * 1e6
      if t ~= math.floor(t) then fine = true break end
    end
    assert.is_true(fine)
  end)

  it("sleeps at least the time asked", function()
    local t0 = futures.monotonic()
    futures.sleep(0.02)
    assert.is_true(futures.monotonic() - t0 >= 0.02)
    futures.sleep(0)
    futures.sleep(-1)
  end)

  it("rejects a sleep that is not a number", function()
    assert.has_error(function() futures.sleep("x") end)
    assert.has_error(function() futures.sleep(0/0) end)
  end)

  it("returns nil for current_worker in the main state", function()
    assert.is_nil(futures.current_worker())
  end)
end)
