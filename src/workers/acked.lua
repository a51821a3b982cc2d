-- Records, per partition, the applied position a committed batch left in the store; sent in
-- one transaction with the batch's XACK. Positions only move forward: batches in flight may
-- be acknowledged out of order.
--
-- KEYS[1] the acknowledged positions (hash: partition → stream id)
-- ARGV pairs: partition, position
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms or '0', seq or '0'
end
-- Whether stream id a is after b; digits compared as text of equal length (no precision limit).
local function after(a, b)
  local ams, aseq = parts(a)
  local bms, bseq = parts(b)
  if #ams ~= #bms then return #ams > #bms end
  if ams ~= bms then return ams > bms end
  if #aseq ~= #bseq then return #aseq > #bseq end
  return aseq > bseq
end
for i = 1, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current or after(ARGV[i + 1], current) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
