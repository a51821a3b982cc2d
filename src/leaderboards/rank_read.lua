-- Reads rows of a board in one round trip. Runs after rank.lua.
--
-- KEYS: the board, its distinct scores (see core::keys::BoardKeys); for 'player' and
--       'players', the players' stats hashes (their stamps)
-- ARGV[1] what to read:
--   'offset'  the rows after skipping ARGV[2] rows
--   'after'   the rows right after the position of (stored score ARGV[2], member ARGV[6])
--   'before'  the rows right before it (a cursor's member may have moved or left since: the
--             position is where it would sort)
--   'player'  the rows around player ARGV[6], whose stamp is field ARGV[2] of KEYS[3]
--   'players' for players ARGV[6…] (stats hashes KEYS[3…], stamp field ARGV[2]): each one's
--             member, stored score, rank count and players strictly behind ('', '', 0, 0 when
--             not on the board)
-- ARGV[3] most rows ('player': rows above and below)
-- ARGV[4] 'standard', 'dense' or 'ordinal'
-- ARGV[5] bytes of the other score columns at the start of members (0: one score)
--
-- Returns {total, rows skipped before the first row, rank of the first row, players strictly
-- behind the player ('player'; 0 otherwise), member, stored score, member, stored score…}, or
-- false for a player not on the board. Later rows' ranks follow from the scores. 'players'
-- returns {total, member, score, count, behind, member, score, count, behind…} instead: ranks
-- are count + 1.

local board, distinct = KEYS[1], KEYS[2]
local start, from, limit, ties = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local tail_bytes = tonumber(ARGV[5])
local SUBJECT = 6

-- Members ahead of a row with stored score `stored` (text) in the requested ranking.
local function ahead(stored, member)
  if ties == 'ordinal' then return redis.call('ZRANK', board, member) end
  local ranked = ties == 'dense' and distinct or board
  return ahead_of(ranked, stored, string.sub(member, 1, tail_bytes), false)
end

-- Players with a strictly worse score than the row (`stored`, `member`).
local function behind(total, stored, member)
  return total - ahead_of(board, stored, string.sub(member, 1, tail_bytes), true)
end

if start == 'players' then
  local total = redis.call('ZCARD', board)
  local reply = { total }
  for i = SUBJECT, #ARGV do
    local player = ARGV[i]
    local stamp = redis.call('HGET', KEYS[i - SUBJECT + 3], from)
    local member = stamp and (stamp .. player)
    local stored = member and redis.call('ZSCORE', board, member)
    if stored then
      reply[#reply + 1] = member
      reply[#reply + 1] = stored
      reply[#reply + 1] = ahead(stored, member)
      reply[#reply + 1] = behind(total, stored, member)
    else
      reply[#reply + 1] = ''
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
  return ahead_of(board, stored, member, false), false
end

local total = redis.call('ZCARD', board)
local first_row, last_row
local subject_behind = 0

if start == 'offset' then
  first_row = tonumber(from)
  last_row = first_row + limit - 1
elseif start == 'after' then
  local at, present = position(from, ARGV[SUBJECT])
  first_row = present and at + 1 or at
  last_row = first_row + limit - 1
elseif start == 'before' then
  local at = position(from, ARGV[SUBJECT])
  first_row = math.max(0, at - limit)
  last_row = at - 1
else
  local stamp = redis.call('HGET', KEYS[3], from)
  if not stamp then return false end
  local member = stamp .. ARGV[SUBJECT]
  local at = redis.call('ZRANK', board, member)
  if not at then return false end
  subject_behind = behind(total, redis.call('ZSCORE', board, member), member)
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
