-- Acknowledges a committed batch's entries and records, per partition, the applied position
-- its commit left in the store. Positions only move forward: batches in flight may be
-- acknowledged out of order. Also counts the entries acknowledged, for `lost.lua`.
--
-- KEYS[1] the event stream, KEYS[2] the acknowledged positions (hash: partition → stream
-- id), KEYS[3] the group's counts (hash)
-- ARGV[1] the group, ARGV[2] the number of entry ids n, ARGV[3 .. 2+n] the ids, then pairs
-- of partition and position
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
local ids = tonumber(ARGV[2])
local acked = 0
-- In slices: unpack's stack is limited.
for first = 3, 2 + ids, 1000 do
  local last = math.min(first + 999, 2 + ids)
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, first, last))
end
if acked > 0 then
  redis.call('HINCRBY', KEYS[3], 'acked', acked)
end
for i = 3 + ids, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[2], ARGV[i])
  if not current or after(ARGV[i + 1], current) then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return acked
