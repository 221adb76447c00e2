-- Returns a live lease's amount to its pool and wakes the requests waiting for it.
-- ARGV: prefix, id, holder scope ('' for any holder)
-- Reply: {'unrestored'} | {'released', res} | {'missing'}
local id, scope = ARGV[2], ARGV[3]
if unrestored() then return {'unrestored'} end
local key = lease_key(id)
local f = redis.call('HMGET', key, 'res', 'amt', 'holder', 'st', 'exp')
if not f[1] then return {'missing'} end
if scope ~= '' and f[3] ~= scope then return {'missing'} end
if f[4] == 'preempted' then return {'missing'} end
local now = now_ms()
if tonumber(f[5]) <= now then
  prune(f[1], now)
  return {'missing'}
end
unaccount(f[1], id, tonumber(f[2]), f[3])
redis.call('DEL', key)
-- A publish per release would cost every replica a message per release; only announce it
-- when some request is waiting for this pool.
if tonumber(redis.call('GET', prefix .. 'waiters:' .. f[1]) or '0') > 0 then
  redis.call('PUBLISH', prefix .. 'released', f[1])
end
return {'released', f[1]}
