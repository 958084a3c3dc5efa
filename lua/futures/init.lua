-- futures: Python's concurrent.futures for Lua 5.4.
-- The C core (futures.core) does the threads, processes, queues and value
-- transfer; this file is the Python-shaped surface on top of it.
local core = require "futures.core"

local futures = {
  _VERSION = core._VERSION,
  cpu_count = core.cpu_count,
  monotonic = core.monotonic,
  sleep = core.sleep,
  current_worker = core.current_worker,
}

---------------------------------------------------------------- errors
-- Every error the library raises is a table {message = ...} whose class
-- is known by name, so that `is` still works on a copy that crossed from a
-- worker (a copied metatable is a different table with the same __name).
local classes = {}

local function new_class(name, parent)
  local cls = { __name = "futures." .. name, name = name, parent = parent }
  cls.__index = cls
  cls.__tostring = function(e) return cls.__name .. ": " .. tostring(e.message) end
  function cls:is(v)
    local mt = getmetatable(v)
    local c = type(mt) == "table" and classes[rawget(mt, "__name")]
    while c do
      if c == self then return true end
      c = c.parent
    end
    return false
  end
  function cls:new(message)
    return setmetatable({ message = message }, self)
  end
  setmetatable(cls, { __call = function(self, message) return self:new(message) end })
  classes[cls.__name] = cls
  futures[name] = cls
  return cls
end

local Error = new_class("Error")
new_class("CancelledError", Error)
new_class("TimeoutError", Error)
new_class("InvalidStateError", Error)
new_class("ShutdownError", Error)
new_class("TransferError", Error)
local Broken = new_class("BrokenExecutor", Error)
new_class("BrokenThreadPool", Broken)
new_class("BrokenProcessPool", Broken)

core._set_error_ctor(function(name, message)
  return futures[name]:new(message)
end)

return futures
