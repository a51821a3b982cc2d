-- Relays source entries into one partition stream, each at most once, in source order.
-- KEYS[1] the partition stream, KEYS[2] its mark: the id (in the source stream) of the last
-- entry relayed into it. ARGV: per entry, in source order: its source id, the number n of
-- field and value items that follow, then those n items.
-- Appends (with a new `*` id) every entry whose source id is above the mark, then raises the
-- mark to the last one appended. Returns {appended, skipped}.

-- Whether stream id a is above stream id b, compared as numbers (ms, then sequence) without
-- converting them (Lua numbers are doubles): longer digit strings are larger, equal lengths
-- compare as text. Redis writes ids without leading zeros.
local function above(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)%-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)%-(%d+)$')
  if not a_ms or not b_ms then
    error('relay: not a stream id: ' .. tostring(a) .. ' / ' .. tostring(b))
  end
  if #a_ms ~= #b_ms then return #a_ms > #b_ms end
  if a_ms ~= b_ms then return a_ms > b_ms end
  if #a_seq ~= #b_seq then return #a_seq > #b_seq end
  return a_seq > b_seq
end

local mark = redis.call('GET', KEYS[2])
local appended, skipped = 0, 0
local i = 1
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  if not mark or above(id, mark) then
    redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 2, i + 1 + n))
    mark = id
    appended = appended + 1
  else
    skipped = skipped + 1
  end
  i = i + 2 + n
end
if appended > 0 then
  redis.call('SET', KEYS[2], mark)
end
return {appended, skipped}
