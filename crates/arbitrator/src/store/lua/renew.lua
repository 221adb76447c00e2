-- Extends a live lease from now.
-- ARGV: prefix, id, ttl_s (0 keeps the lease's), holder scope ('' for any holder)
-- Reply: {'unrestored'} | {'renewed', res, amount, holder, priority, ttl_s, acquired ms, expires ms}
--      | {'preempted'} | {'missing'}
local id, ttl_arg, scope = ARGV[2], tonumber(ARGV[3]), ARGV[4]
if unrestored() then return {'unrestored'} end
local key = lease_key(id)
local f = redis.call('HMGET', key, 'res', 'amt', 'holder', 'prio', 'ttl', 'acq', 'exp', 'st')
if not f[1] then return {'missing'} end
if scope ~= '' and f[3] ~= scope then return {'missing'} end
if f[8] == 'preempted' then return {'preempted'} end
local now = now_ms()
if tonumber(f[7]) <= now then
  prune(f[1], now)
  return {'missing'}
end
local ttl_s = ttl_arg
if ttl_s == 0 then ttl_s = tonumber(f[5]) end
local expires = now + ttl_s * 1000
redis.call('HSET', key, 'exp', num(expires), 'ttl', num(ttl_s))
redis.call('ZADD', expiry_key(f[1]), num(expires), id)
return {'renewed', f[1], f[2], f[3], f[4], num(ttl_s), f[6], num(expires)}
