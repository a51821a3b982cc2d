-- Applies one partition's share of a batch atomically and exactly once.
--
-- KEYS[1]  applied position: id of the last stream entry applied to this partition
-- KEYS[2]  fence: the highest worker lease epoch that has written this partition
-- KEYS[3…] the keys the operations touch (all in the same hash slot as KEYS[1])
-- ARGV[1]  the writer's lease epoch
-- ARGV[2]  number of entries, then per entry:
--            entry id, number of operations, then per operation:
--              command, index into KEYS, number of arguments, arguments…
--
-- Entries at or below the applied position were applied before (a replay after a crash):
-- they are skipped. Returns the number of entries applied now.

local function id_after(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  -- Compare digit strings by length first: ids exceed Lua's exact number range.
  if a_ms ~= b_ms then
    if #a_ms ~= #b_ms then return #a_ms > #b_ms end
    return a_ms > b_ms
  end
  if #a_seq ~= #b_seq then return #a_seq > #b_seq end
  return a_seq > b_seq
end

local epoch = tonumber(ARGV[1])
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if fence > epoch then
  return redis.error_reply('FENCED lease epoch ' .. epoch .. ' is older than ' .. fence)
end
if fence < epoch then
  redis.call('SET', KEYS[2], epoch)
end

local position = redis.call('GET', KEYS[1])
local applied = 0
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  local id = ARGV[i]
  local n_ops = tonumber(ARGV[i + 1])
  i = i + 2
  local fresh = (not position) or id_after(id, position)
  for _ = 1, n_ops do
    local n_args = tonumber(ARGV[i + 2])
    if fresh then
      redis.call(ARGV[i], KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + 2 + n_args))
    end
    i = i + 3 + n_args
  end
  if fresh then
    position = id
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('SET', KEYS[1], position)
end
return applied
