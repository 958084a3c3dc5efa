-- A game loop never blocks: it hands slow work to a pool and calls
-- futures.poll() once a frame, which runs the done-callbacks that are due,
-- here, in the main state, between two frames.
local futures = require "futures"

-- Pretend to load an asset: slow work, off the main thread.
local function load_asset(name, seconds)
  futures.sleep(seconds)
  return ("%s (%d bytes)"):format(name, #name * 1000)
end

local pool <close> = futures.ThreadPoolExecutor(2)
local frame, loaded, wanted = 0, {}, 0
for _, job in ipairs { { "music.ogg", 0.25 }, { "hero.png", 0.05 }, { "level1.map", 0.15 } } do
  wanted = wanted + 1
  pool:submit(load_asset, job[1], job[2]):add_done_callback(function(f)
    -- runs inside futures.poll(), never in a worker: safe to touch `loaded`
    loaded[#loaded + 1] = f:result()
    print(("frame %3d: loaded %s"):format(frame, f:result()))
  end)
end

local FRAME = 1 / 60
while #loaded < wanted do
  frame = frame + 1
  futures.poll()            -- run due callbacks; never blocks
  -- ... update the world, draw it ...
  futures.sleep(FRAME)
end
print(("all %d assets loaded after %d frames"):format(#loaded, frame))
