-- Reads from the consumer group, but only for the current lease holder (fencing), and renews
-- the lease while doing so.
--
-- KEYS[1] the event stream, KEYS[2] the lease
-- ARGV: lease token, lease ttl (ms), group, consumer, count, mode, claim cursor
--   mode `claim`: take over pending entries of any consumer (XAUTOCLAIM from the cursor);
--   mode `new`:   read entries never delivered to the group (XREADGROUP >).
-- Returns {'claim', next cursor, entries, deleted ids} | {'new', entries} |
--         {'idle', id of the stream's last entry or '0-0'}.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('LEASE_LOST the stream lease is held by another worker')
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[6] == 'claim' then
  local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[3], ARGV[4], 0, ARGV[7], 'COUNT', ARGV[5])
  return {'claim', claimed[1], claimed[2], claimed[3] or {}}
end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[3], ARGV[4], 'COUNT', ARGV[5], 'STREAMS', KEYS[1], '>')
if read then
  return {'new', read[1][2]}
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then
  return {'idle', last[1][1]}
end
return {'idle', '0-0'}
