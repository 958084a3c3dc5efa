-- The embedding API: a C host linking Lua and libfutures.a statically
-- (examples/embed/), with its own library in thread and process workers.
-- the build under test: where futures.core is found
local core = assert(package.searchpath("futures.core", package.cpath))
local build = core:match("^(.*)/futures/core%.so$")
if build:sub(1, 1) ~= "/" then build = os.getenv("PWD") .. "/" .. build end

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

describe("#subprocess an embedding host", function()
  it("maps its own C function over a thread pool and a process pool", function()
    -- from another directory, with no module search paths: nothing on disk
    local cmd = ("cd / && env -u LUA_PATH -u LUA_CPATH %q %q %q"):format(
      build .. "/embed/host", os.getenv("PWD") .. "/examples/embed/script.lua",
      build .. "/embed/worker")
    local out, code = run(cmd)
    assert.equal(0, code, out)
    for i = 1, 4 do
      assert.matches(("thread  %d: host.scale%%(%d%%) = %g"):format(i, i, i * 2.5), out)
      assert.matches(("process %d: host.scale%%(%d%%) %%+ 1 = %g"):format(i, i, i * 2.5 + 1), out)
    end
    assert.matches("callback: 25.0", out, 1, true)
  end)

  it("fails a process pool clearly when its worker program is missing", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local px <close> = futures.ProcessPoolExecutor{ max_workers = 1, worker = "/nonexistent/worker" }
      local ok, e = pcall(function() return px:submit(host.scale, 1):result(60) end)
      print(futures.BrokenProcessPool:is(e), tostring(e))
    ]])
    f:close()
    local out, code = run(("%q %q /nonexistent/worker"):format(build .. "/embed/host", script))
    os.remove(script)
    assert.equal(0, code, out)
    -- the error records the script's line that waited for it
    assert.matches(("true\t%s:2: futures.BrokenProcessPool: cannot start the worker program '/nonexistent/worker'"):format(script), out, 1, true)
  end)
end)
