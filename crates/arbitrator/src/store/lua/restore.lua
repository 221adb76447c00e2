-- Rebuilds the live view from the journal's active leases after Redis lost it. Leases already
-- present (granted since) and leases expired meanwhile are skipped, so two replicas restoring at
-- once, or a restore racing new grants, count nothing twice.
-- ARGV: prefix, then 8 fields per lease: id, res, amount, holder, priority, ttl_s, acquired ms,
--       expires ms
-- Reply: the number of leases restored, or -1 when the live view was intact.
if redis.call('EXISTS', prefix .. 'restored') == 1 then return -1 end
local now = now_ms()
local restored = 0
for index = 2, #ARGV, 8 do
  local id = ARGV[index]
  local expires = tonumber(ARGV[index + 7])
  if expires > now and redis.call('EXISTS', lease_key(id)) == 0 then
    account(id, ARGV[index + 1], tonumber(ARGV[index + 2]), ARGV[index + 3], tonumber(ARGV[index + 4]),
      tonumber(ARGV[index + 5]), tonumber(ARGV[index + 6]), expires)
    restored = restored + 1
  end
end
redis.call('SET', prefix .. 'restored', num(now))
return restored
