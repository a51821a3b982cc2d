-- Acquires (or keeps) the worker lease on the stream.
--
-- KEYS[1] the lease (value `<consumer>|<epoch>`), KEYS[2] the epoch counter
-- ARGV[1] consumer name, ARGV[2] ttl (ms)
-- Returns the epoch (> 0) when this consumer holds the lease, or minus the milliseconds
-- until the current holder's lease runs out.
local holder = redis.call('GET', KEYS[1])
if holder then
  local name, epoch = string.match(holder, '^(.*)|(%d+)$')
  if name == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(epoch)
  end
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return -ttl
end
-- Seed a missing counter with the clock, so epochs keep growing even if this Redis lost its
-- data while the store (another server, perhaps) still remembers older epochs in its fences.
if redis.call('EXISTS', KEYS[2]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[2], now[1] * 1000 + math.floor(now[2] / 1000))
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
return epoch
