-- The rank index's encoding, shared by the worker's commit script and admin erasure (see
-- leaderboards::rank for the layout, which must stay byte-equal to this).

-- A number's digits prefixed by their count, so that byte order is numeric order.
local function counted(digits)
  return string.char(64 + #digits) .. digits
end

-- A score as 16 hex digits whose byte order is best (highest) first: the IEEE 754 bits,
-- sign bit flipped for non-negative numbers, then everything inverted.
local function encode_score_key(score)
  if score == 0 then score = 0 end -- -0 and 0 are one score
  local b = { string.byte(struct.pack('>d', score), 1, 8) }
  if b[1] < 128 then
    b[1] = 127 - b[1]
    for k = 2, 8 do b[k] = 255 - b[k] end
  end
  return string.format('%02x%02x%02x%02x%02x%02x%02x%02x', unpack(b))
end

-- Scores repeat a lot within one script call (small win counts): each is encoded once.
-- (-0 and 0 are one table index, as they are one score.)
local score_keys = {}
local function score_key(score)
  local key = score_keys[score]
  if not key then
    key = encode_score_key(score)
    score_keys[score] = key
  end
  return key
end

-- Takes `player`, whose score on the board is `score` (a number), out of the order index;
-- drops the score from the distinct scores when nobody else has it.
-- Leaves the player's `at` stamp for the caller to overwrite or delete.
local function unindex(order, at, distinct, player, score)
  local key = score_key(score)
  local since = redis.call('HGET', at, player)
  if since then redis.call('ZREM', order, key .. since .. player) end
  if #redis.call('ZRANGE', order, '[' .. key, '(' .. key .. '\255', 'BYLEX', 'LIMIT', 0, 1) == 0 then
    redis.call('ZREM', distinct, key)
  end
end

