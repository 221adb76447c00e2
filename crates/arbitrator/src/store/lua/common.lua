-- Shared by every script of the live view; each script is this prelude followed by its own body.
-- ARGV[1] is always the key prefix (`<configured prefix>arb:`). Redis runs a script atomically, so
-- a decision and its effects are one step: no lock is held across round trips and two arbitrator
-- replicas never see each other's half-done work.
--
-- Keys under the prefix:
--   lease:<id>      hash: res amt holder prio ttl acq exp st [by]
--   exp:<res>       zset: live lease ids by expiry (ms, Redis clock)
--   prio:<res>      zset: live lease ids in preemption order (lowest priority, then newest, first)
--   use:<res>       hash: total, count, h:<holder> (sums over the live leases)
--   limits          hash: <res> -> "<total> <per holder> <preempt 0|1>"
--   waiters:<res>   count of requests waiting for capacity (release publishes only then)
--   restored        present once the live view was rebuilt from Postgres
-- Acquire, renew and release answer {'unrestored'} while `restored` is missing: deciding from an
-- emptied live view would grant capacity the journal's leases still hold, and a restore after such
-- grants would add those leases back without any limit check. The service restores, then retries.
-- Numbers go back to Redis through num(): Redis formats Lua numbers with 14 significant digits,
-- which would turn large amounts and scores into exponents.
local prefix = ARGV[1]

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function num(value)
  return string.format('%.0f', value)
end

local function unrestored()
  return redis.call('EXISTS', prefix .. 'restored') == 0
end

local function lease_key(id) return prefix .. 'lease:' .. id end
local function expiry_key(res) return prefix .. 'exp:' .. res end
local function order_key(res) return prefix .. 'prio:' .. res end
local function usage_key(res) return prefix .. 'use:' .. res end

-- Lowest priority first; within a priority the newest (largest acquired ms) first.
local function order_score(priority, acquired)
  return num(priority * 1e13 + (1e13 - acquired))
end

-- Adds a live lease to its pool.
local function account(id, res, amount, holder, priority, ttl_s, acquired, expires)
  redis.call('HSET', lease_key(id), 'res', res, 'amt', num(amount), 'holder', holder,
    'prio', num(priority), 'ttl', num(ttl_s), 'acq', num(acquired), 'exp', num(expires), 'st', 'active')
  redis.call('ZADD', expiry_key(res), num(expires), id)
  redis.call('ZADD', order_key(res), order_score(priority, acquired), id)
  local usage = usage_key(res)
  redis.call('HINCRBY', usage, 'total', num(amount))
  redis.call('HINCRBY', usage, 'count', 1)
  redis.call('HINCRBY', usage, 'h:' .. holder, num(amount))
end

-- Removes a live lease's share from its pool (the lease hash is the caller's business).
local function unaccount(res, id, amount, holder)
  redis.call('ZREM', expiry_key(res), id)
  redis.call('ZREM', order_key(res), id)
  local usage = usage_key(res)
  redis.call('HINCRBY', usage, 'total', num(-amount))
  redis.call('HINCRBY', usage, 'count', -1)
  if redis.call('HINCRBY', usage, 'h:' .. holder, num(-amount)) <= 0 then
    redis.call('HDEL', usage, 'h:' .. holder)
  end
end

-- Drops every lease of `res` whose expiry has passed, so it stops counting the moment it
-- expires; Postgres learns of it from the sweeper.
local function prune(res, now)
  local expired = redis.call('ZRANGEBYSCORE', expiry_key(res), '-inf', num(now))
  for _, id in ipairs(expired) do
    local fields = redis.call('HMGET', lease_key(id), 'amt', 'holder')
    if fields[1] then
      unaccount(res, id, tonumber(fields[1]), fields[2])
    else
      redis.call('ZREM', expiry_key(res), id)
      redis.call('ZREM', order_key(res), id)
    end
    redis.call('DEL', lease_key(id))
  end
end

-- The pool's limits as stored by the replicas, or `default` (the caller's own view, stored for
-- the others) when Redis has none, e.g. after a flush.
local function limits(res, default)
  local text = redis.call('HGET', prefix .. 'limits', res)
  if not text then
    text = default
    redis.call('HSET', prefix .. 'limits', res, default)
  end
  local total, per_holder, preempt = string.match(text, '^(%d+) (%d+) ([01])$')
  return tonumber(total), tonumber(per_holder), preempt == '1'
end

