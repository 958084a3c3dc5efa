-- Run by the embedding host (host.c): maps the host's C function over a
-- thread pool and a process pool.  `host.scale` crosses by name: each
-- worker state has the host library, so it is found there.
local inputs = { 1, 2, 3, 4 }

local tx <close> = futures.ThreadPoolExecutor(2)
for i, r in tx:map(host.scale, inputs) do
  print(("thread  %d: host.scale(%d) = %g"):format(i, inputs[i], r))
end

local px <close> = futures.ProcessPoolExecutor{ max_workers = 2, worker = WORKER_PROGRAM }
for i, r in px:map(function(x) return host.scale(x) + 1 end, inputs) do
  print(("process %d: host.scale(%d) + 1 = %g"):format(i, inputs[i], r))
end

-- A game loop: done-callbacks run between frames, from futures.poll().
local f = tx:submit(function() return host.scale(10) end)
f:add_done_callback(function(done) print("callback: " .. done:result()) end)
local frames = 0
while not f:done() or futures.poll() > 0 do
  frames = frames + 1
  futures.poll()
  futures.sleep(0.001)   -- the rest of the frame
end
futures.poll()
print("frames: " .. (frames > 0 and "some" or "none"))
