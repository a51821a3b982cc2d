-- Reads rows of a board in one round trip. Runs after rank.lua.
--
-- KEYS: the board, its distinct scores (see core::keys::BoardKeys); for 'player' and
--       'players', the players' stats hashes (their stamps)
-- ARGV[1] what to read:
--   'offset'  the rows after skipping ARGV[2] rows
--   'after'   the rows right after the position of (stored score ARGV[2], member ARGV[5])
--   'before'  the rows right before it (a cursor's member may have moved or left since: the
--             position is where it would sort)
--   'player'  the rows around player ARGV[5], whose stamp is field ARGV[2] of KEYS[3]
--   'players' for players ARGV[5…] (stats hashes KEYS[3…], stamp field ARGV[2]): each one's
--             stored score, rank count and players strictly behind ('', 0, 0 when not on
--             the board)
-- ARGV[3] most rows ('player': rows above and below)
-- ARGV[4] 'standard', 'dense' or 'ordinal'
--
-- Returns {total, rows skipped before the first row, rank of the first row, players strictly
-- behind the player ('player'; 0 otherwise), member, stored score, member, stored score…}, or
-- false for a player not on the board. Later rows' ranks follow from the scores. 'players'
-- returns {total, score, count, behind, score, count, behind…} instead: ranks are count + 1.

local board, distinct = KEYS[1], KEYS[2]
local start, from, limit, ties = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

-- Byte order (Lua's own string order follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Members ahead of a row with stored score `stored` (text) in the requested ranking.
local function ahead(stored, member)
  if ties == 'ordinal' then return redis.call('ZRANK', board, member) end
  local ranked = ties == 'dense' and distinct or board
  return redis.call('ZCOUNT', ranked, '-inf', '(' .. stored)
end

-- Players with a strictly worse score than stored score `stored` (text).
local function behind(total, stored)
  return total - redis.call('ZCOUNT', board, '-inf', stored)
end

if start == 'players' then
  local total = redis.call('ZCARD', board)
  local reply = { total }
  for i = 5, #ARGV do
    local player = ARGV[i]
    local stamp = redis.call('HGET', KEYS[i - 2], from)
    local member = stamp and (stamp .. player)
    local stored = member and redis.call('ZSCORE', board, member)
    if stored then
      reply[#reply + 1] = stored
      reply[#reply + 1] = ahead(stored, member)
      reply[#reply + 1] = behind(total, stored)
    else
      reply[#reply + 1] = ''
      reply[#reply + 1] = 0
      reply[#reply + 1] = 0
    end
  end
  return reply
end

-- Where (stored, member) sorts on the board, and whether it is there.
local function position(stored, member)
  local score = redis.call('ZSCORE', board, member)
  if score and tonumber(score) == tonumber(stored) then
    return redis.call('ZRANK', board, member), true
  end
  local low = redis.call('ZCOUNT', board, '-inf', '(' .. stored)
  local high = low + redis.call('ZCOUNT', board, stored, stored)
  while low < high do
    local middle = math.floor((low + high) / 2)
    if before(redis.call('ZRANGE', board, middle, middle)[1], member) then
      low = middle + 1
    else
      high = middle
    end
  end
  return low, false
end

local total = redis.call('ZCARD', board)
local first_row, last_row
local subject_behind = 0

if start == 'offset' then
  first_row = tonumber(from)
  last_row = first_row + limit - 1
elseif start == 'after' then
  local at, present = position(from, ARGV[5])
  first_row = present and at + 1 or at
  last_row = first_row + limit - 1
elseif start == 'before' then
  local at = position(from, ARGV[5])
  first_row = math.max(0, at - limit)
  last_row = at - 1
else
  local stamp = redis.call('HGET', KEYS[3], from)
  if not stamp then return false end
  local at = redis.call('ZRANK', board, stamp .. ARGV[5])
  if not at then return false end
  subject_behind = behind(total, redis.call('ZSCORE', board, stamp .. ARGV[5]))
  first_row = math.max(0, at - limit)
  last_row = at + limit
end

local rows = {}
if last_row >= first_row then
  rows = redis.call('ZRANGE', board, first_row, last_row, 'WITHSCORES')
end
local first = first_row + 1
if #rows > 0 and ties ~= 'ordinal' then
  first = ahead(rows[2], rows[1]) + 1
end
local reply = { total, first_row, first, subject_behind }
for i = 1, #rows do reply[#reply + 1] = rows[i] end
return reply
