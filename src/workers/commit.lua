-- Applies entries of one partition (a product, or the dead letters), in stream order,
-- atomically and exactly once: a batch's share is split into calls of at most
-- `worker.entries_per_script_call` entries, each planned on the position the last left.
-- Runs after leaderboards/rank.lua (score_key, counted, unindex).
--
-- KEYS[1]  applied position: id of the last stream entry applied to this partition
-- KEYS[2]  fence: the highest worker lease epoch that has written this partition
-- KEYS[3]  generation: bumped by admin deletions and resets
-- KEYS[4…] the keys the operations touch (all in the same hash slot as KEYS[1]); the keys of
--          one BOARD operation are consecutive
-- ARGV[1]  the writer's lease epoch
-- ARGV[2]  the generation the writer planned with ('' for none)
-- ARGV[3]  the applied position the writer planned after ('' for none)
-- ARGV[4]  number of entries, then per entry, in stream order:
--            entry id, number of operations, then per operation:
--              command, index into KEYS of its (first) key, the number of arguments unless
--              `fixed_args` knows it, arguments…
--
-- The worker plans only entries after the applied position it knows. Unless the store holds
-- exactly that position and generation, its view is stale (or a commit it sent before this
-- one failed) and nothing is written: returns -1. Otherwise returns the number of entries
-- applied.

-- The stream id of the entry being applied, and its `achieved` stamp (computed on first use).
local entry_id, entry_achieved

local function achieved()
  if not entry_achieved then
    local ms, seq = string.match(entry_id, '^(%d+)-(%d+)$')
    entry_achieved = counted(ms) .. counted(seq)
  end
  return entry_achieved
end

-- Boards (by the KEYS index of their first key) whose keys this call has set to expire.
local expiring = {}

-- Operations whose number of arguments is fixed (so the caller does not send it, and fewer
-- arguments are sent and converted); commit.rs's FIXED_ARGS must say the same.
local fixed_args = {
  BOARD = 4, HMAX = 2, HMIN = 2, STREAK = 2, HISTORY = 2, HINCRBY = 2, HINCRBYFLOAT = 2,
}

-- Operations that are not single Redis commands. Each gets the index of its key in KEYS.
local custom = {
  -- Keep the larger / smaller of the stored and the new value.
  HMAX = function(k, field, value)
    local key = KEYS[k]
    local current = redis.call('HGET', key, field)
    if not current or tonumber(value) > tonumber(current) then redis.call('HSET', key, field, value) end
  end,
  HMIN = function(k, field, value)
    local key = KEYS[k]
    local current = redis.call('HGET', key, field)
    if not current or tonumber(value) < tonumber(current) then redis.call('HSET', key, field, value) end
  end,
  -- A won match: current streak + 1, best raised to it.
  STREAK = function(k, current, best)
    local key = KEYS[k]
    local now = redis.call('HINCRBY', key, current, 1)
    if now > tonumber(redis.call('HGET', key, best) or '0') then redis.call('HSET', key, best, now) end
  end,
  -- Newest first, at most `limit` entries.
  HISTORY = function(k, limit, entry)
    local key = KEYS[k]
    redis.call('LPUSH', key, entry)
    redis.call('LTRIM', key, 0, tonumber(limit) - 1)
  end,
  -- A score change on a board, keeping its rank index in step. Keys, from KEYS[k] on:
  -- scores, order, at, distinct. `how`: sum, max, min, last or ensure (add with 0 unless
  -- present). A player who reaches a new score is stamped with the entry's id: among equal
  -- scores, earlier first.
  -- `expire_at` ('' for never): when a period board expires (Unix seconds).
  BOARD = function(k, how, value, player, expire_at)
    local scores, order, at, distinct = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    local old = redis.call('ZSCORE', scores, player)
    local was = old and tonumber(old)
    local new
    if how == 'ensure' then
      if was then return end
      new = 0
    elseif how == 'sum' then
      new = tonumber(redis.call('ZINCRBY', scores, value, player))
    else
      local given = tonumber(value)
      if not was or how == 'last' or (how == 'max' and given > was) or (how == 'min' and given < was) then
        new = given
      else
        return
      end
    end
    if new == was then return end
    -- The given text, not the Lua number: it is what the plan computed, digit for digit.
    if how ~= 'sum' then redis.call('ZADD', scores, how == 'ensure' and 0 or value, player) end
    local stamp = achieved()
    local key = score_key(new)
    -- In before out: a set emptied in between would be deleted by Redis and re-created
    -- without a period board's expiry (a board with one player whose score changes).
    redis.call('ZADD', order, 0, key .. stamp .. player)
    redis.call('ZADD', distinct, 0, key)
    if was then unindex(order, at, distinct, player, was) end
    redis.call('HSET', at, player, stamp)
    -- Keys keep their expiry when written, and a period board's keys are created only when
    -- a player first enters it: setting it then is enough, and once per call is enough while
    -- the keys exist (players only ever enter a board here, so none can empty and vanish;
    -- but an expiry already past deletes them at once).
    if not was and expire_at ~= '' and not expiring[k] then
      for j = k, k + 3 do redis.call('EXPIREAT', KEYS[j], expire_at) end
      expiring[k] = redis.call('EXISTS', KEYS[k]) == 1
    end
  end,
}

local epoch = tonumber(ARGV[1])
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if fence > epoch then
  return redis.error_reply('FENCED lease epoch ' .. epoch .. ' is older than ' .. fence)
end

local n_entries = tonumber(ARGV[4])
if n_entries == 0 then return 0 end
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[2] or (redis.call('GET', KEYS[1]) or '') ~= ARGV[3] then
  return -1
end
if fence < epoch then
  redis.call('SET', KEYS[2], epoch)
end

local i = 5
local last
for _ = 1, n_entries do
  last = ARGV[i]
  entry_id, entry_achieved = last, nil
  local n_ops = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n_ops do
    local command = ARGV[i]
    local k = tonumber(ARGV[i + 1])
    local n_args = fixed_args[command]
    if n_args then
      i = i + 2
    else
      n_args = tonumber(ARGV[i + 2])
      i = i + 3
    end
    local op = custom[command]
    if op then
      op(k, unpack(ARGV, i, i + n_args - 1))
    else
      redis.call(command, KEYS[k], unpack(ARGV, i, i + n_args - 1))
    end
    i = i + n_args
  end
end
redis.call('SET', KEYS[1], last)
return n_entries
