-- Each pool's allocation right now (expired leases dropped first).
-- ARGV: prefix, then resources
-- Reply: per resource: allocated, live lease count, stored limits ('' when none)
local now = now_ms()
local reply = {}
for index = 2, #ARGV do
  local res = ARGV[index]
  prune(res, now)
  local usage = redis.call('HMGET', usage_key(res), 'total', 'count')
  reply[#reply + 1] = usage[1] or '0'
  reply[#reply + 1] = usage[2] or '0'
  reply[#reply + 1] = redis.call('HGET', prefix .. 'limits', res) or ''
end
return reply
