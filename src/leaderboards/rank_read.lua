-- Reads rows of a board's rank index in one round trip. Runs after rank.lua.
--
-- KEYS: scores, order, at, distinct (see core::keys::BoardKeys)
-- ARGV[1] where the rows start: 'offset' (ARGV[2] rows skipped), 'after' / 'before' (ARGV[2]
--         an index member: the rows right after it / right before it), or 'player' (ARGV[2]
--         a player: the rows around them)
-- ARGV[3] most rows ('player': rows above and below)
-- ARGV[4] 'standard', 'dense' or 'ordinal'
--
-- Returns {total, rows skipped before the first row, rank of the first row, rows…}, or
-- false for a player not on the board. Later rows' ranks follow from the scores.

local scores, order, at, distinct = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local start, from, limit, ties = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local total = redis.call('ZCARD', order)
local rows, skipped

if start == 'offset' then
  skipped = tonumber(from)
  rows = redis.call('ZRANGE', order, skipped, skipped + limit - 1)
elseif start == 'after' then
  rows = redis.call('ZRANGE', order, '(' .. from, '+', 'BYLEX', 'LIMIT', 0, limit)
  skipped = redis.call('ZLEXCOUNT', order, '-', '[' .. from)
elseif start == 'before' then
  local reversed = redis.call('ZRANGE', order, '(' .. from, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit)
  rows = {}
  for i = #reversed, 1, -1 do rows[#rows + 1] = reversed[i] end
  skipped = redis.call('ZLEXCOUNT', order, '-', '(' .. from) - #rows
else
  local score = redis.call('ZSCORE', scores, from)
  local since = redis.call('HGET', at, from)
  if not score or not since then return false end
  local position = redis.call('ZRANK', order, score_key(tonumber(score)) .. since .. from)
  if not position then return false end
  skipped = math.max(0, position - limit)
  rows = redis.call('ZRANGE', order, skipped, position + limit)
end

local first = skipped + 1
if #rows > 0 and ties ~= 'ordinal' then
  local key = string.sub(rows[1], 1, 16)
  local ranked = ties == 'dense' and distinct or order
  first = redis.call('ZLEXCOUNT', ranked, '-', '(' .. key) + 1
end
local reply = { total, skipped, first }
for i = 1, #rows do reply[#reply + 1] = rows[i] end
return reply
