-- The board layout's shared pieces: the commit script, admin erasure and the read script run
-- after this (see leaderboards::rank for the layout, which must stay equal to this).
--
-- A board is a sorted set in rank order: member `<stamp><player>`, score the negated board
-- score; its distinct scores sit beside it (member: the score as text, scored like the board).

-- A number as text that reads back to the same double (Lua's own conversion keeps 14 digits).
-- -0 and 0 are one score.
local function num(x)
  if x == 0 then x = 0 end
  return string.format('%.17g', x)
end

-- Drops `score` (a number) from the board's distinct scores when nobody has it any more;
-- whether it did.
local function forget_score(board, distinct, score)
  local stored = num(-score)
  if redis.call('ZCOUNT', board, stored, stored) == 0 then
    redis.call('ZREM', distinct, num(score))
    return true
  end
  return false
end

-- Takes `member`, whose board score is `score`, off the board.
local function unindex(board, distinct, member, score)
  redis.call('ZREM', board, member)
  forget_score(board, distinct, score)
end
