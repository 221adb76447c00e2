-- Grants, preempts for, or denies one request, all in one atomic step.
-- ARGV: prefix, res, id, amount, holder, priority, ttl_s, default limits, preempted retention ms,
--       victim holder scope ('' when any holder's lease may be preempted)
-- Reply: {'unrestored'} | {'granted', acquired ms, expires ms, then 7 fields per preempted lease:
--         id, amount, holder, priority, ttl_s, acquired ms, expires ms}
--      | {'holder', held, per-holder limit} | {'total', allocated, limit}
local res, id, holder = ARGV[2], ARGV[3], ARGV[5]
local amount, priority, ttl_s = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local retention_ms, victim_scope = ARGV[9], ARGV[10]
if unrestored() then return {'unrestored'} end
local now = now_ms()
prune(res, now)
local limit, per_holder, preempt = limits(res, ARGV[8])
local usage = usage_key(res)
local allocated = tonumber(redis.call('HGET', usage, 'total') or '0')
local held = tonumber(redis.call('HGET', usage, 'h:' .. holder) or '0')

-- Only strictly lower priorities are candidates, lowest first; nothing is revoked unless revoking
-- the candidates in order makes enough room. The decision is complete before anything changes.
-- An id without a live hash (a lost or damaged key) is dropped from the pool's indexes and skipped,
-- so applying the decision never meets a lease it cannot read and never stops half-way.
local victims = {}
local freed, freed_from_holder = 0, 0
if allocated + amount > limit then
  if not preempt or amount > limit then
    return {'total', num(allocated), num(limit)}
  end
  local candidates = redis.call('ZRANGEBYSCORE', order_key(res), '-inf', '(' .. num(priority * 1e13))
  for _, victim in ipairs(candidates) do
    if allocated - freed + amount <= limit then break end
    local f = redis.call('HMGET', lease_key(victim), 'amt', 'holder', 'st')
    if not f[1] or f[3] ~= 'active' then
      redis.call('ZREM', order_key(res), victim)
      redis.call('ZREM', expiry_key(res), victim)
    elseif victim_scope == '' or f[2] == victim_scope then
      local victim_amount = tonumber(f[1])
      victims[#victims + 1] = victim
      freed = freed + victim_amount
      if f[2] == holder then freed_from_holder = freed_from_holder + victim_amount end
    end
  end
  if allocated - freed + amount > limit then
    return {'total', num(allocated), num(limit)}
  end
end
if held - freed_from_holder + amount > per_holder then
  return {'holder', num(held), num(per_holder)}
end

local expires = now + ttl_s * 1000
local reply = {'granted', num(now), num(expires)}
for _, victim in ipairs(victims) do
  local key = lease_key(victim)
  local f = redis.call('HMGET', key, 'amt', 'holder', 'prio', 'ttl', 'acq', 'exp')
  unaccount(res, victim, tonumber(f[1]), f[2])
  -- Kept a while marked, so the holder's next renewal is told `preempted`, not `unknown`.
  redis.call('HSET', key, 'st', 'preempted', 'by', id)
  redis.call('PEXPIRE', key, retention_ms)
  redis.call('PUBLISH', prefix .. 'preempted:' .. f[2], cjson.encode({
    lease_id = victim, resource = res, amount = f[1], holder = f[2], preempted_by = id,
    preempted_by_priority = priority }))
  for _, value in ipairs({victim, f[1], f[2], f[3], f[4], f[5], f[6]}) do
    reply[#reply + 1] = value
  end
end
account(id, res, amount, holder, priority, ttl_s, now, expires)
return reply
