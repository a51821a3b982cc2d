-- The board layout's shared pieces: the commit script, admin erasure, moderation and the read
-- script run after this (see leaderboards::rank for the layout, which must stay equal to this).
--
-- A board is a sorted set in rank order: member `<stamp><player>`, score the negated board
-- score; its distinct scores sit beside it (member: the score as text, scored like the board).
-- A board with several score columns puts the other columns first in its members
-- (`<tail><stamp><player>`, 8 bytes per column, byte order = rank order) and its distinct
-- members are `<tail><score as text>`. A player's stamp field holds `<tail><stamp>`.

-- A number as text that reads back to the same double (Lua's own conversion keeps 14 digits).
-- -0 and 0 are one score.
local function num(x)
  if x == 0 then x = 0 end
  return string.format('%.17g', x)
end

-- Byte order (Lua's own string order follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Members of sorted set `set` ahead of stored score `stored` (text) and bytes `key`: those
-- with a better score, and those with that score whose member sorts before `key` (with
-- `through`, also those starting with `key`). A score's members are in byte order.
local function ahead_of(set, stored, key, through)
  local low = redis.call('ZCOUNT', set, '-inf', '(' .. stored)
  if key == '' and not through then return low end
  local high = low + redis.call('ZCOUNT', set, stored, stored)
  if key == '' then return high end
  while low < high do
    local middle = math.floor((low + high) / 2)
    local member = redis.call('ZRANGE', set, middle, middle)[1]
    if before(member, key) or (through and string.sub(member, 1, #key) == key) then
      low = middle + 1
    else
      high = middle
    end
  end
  return low
end

-- Drops `score` (a number; with `tail`, the other columns' bytes) from the board's distinct
-- scores when nobody has it any more; whether it did.
local function forget_score(board, distinct, score, tail)
  local stored = num(-score)
  if tail == '' then
    if redis.call('ZCOUNT', board, stored, stored) > 0 then return false end
  elseif ahead_of(board, stored, tail, true) > ahead_of(board, stored, tail, false) then
    return false
  end
  redis.call('ZREM', distinct, tail .. num(score))
  return true
end

-- Takes `player`, whose stamp field holds `prefix` and whose board score is `score`, off the
-- board.
local function unindex(board, distinct, prefix, player, score)
  redis.call('ZREM', board, prefix .. player)
  forget_score(board, distinct, score, string.sub(prefix, 1, #prefix - 8))
end
