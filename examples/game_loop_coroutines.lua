-- The game loop of game_loop.lua, in the coroutine style: each load is a
-- coroutine whose f:result() suspends only itself, so it reads like
-- blocking code while the frame loop never blocks.  futures.poll(), once a
-- frame, resumes the coroutines whose loads finished.
local futures = require "futures"

local function load_asset(name, seconds)
  futures.sleep(seconds)
  return ("%s (%d bytes)"):format(name, #name * 1000)
end

local pool <close> = futures.ThreadPoolExecutor(2)
local frame, loaded = 0, {}
local loads = {}
for _, job in ipairs { { "music.ogg", 0.25 }, { "hero.png", 0.05 }, { "level1.map", 0.15 } } do
  loads[#loads + 1] = futures.spawn(function(name, seconds)
    local asset = pool:submit(load_asset, name, seconds):result()   -- suspends here
    loaded[#loaded + 1] = asset
    print(("frame %3d: loaded %s"):format(frame, asset))
  end, job[1], job[2])
end

local FRAME = 1 / 60
while #loaded < #loads do
  frame = frame + 1
  futures.poll()            -- resume the coroutines whose loads are done; never blocks
  -- ... update the world, draw it ...
  futures.sleep(FRAME)
end
print(("all %d assets loaded after %d frames"):format(#loaded, frame))
