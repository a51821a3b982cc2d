-- Applies entries of one partition (a product, or the dead letters), in stream order,
-- atomically and exactly once: a batch's share is split into calls of at most
-- `worker.entries_per_script_call` entries, each planned on the position the last left.
-- Runs after leaderboards/rank.lua (num, forget_score).
--
-- KEYS[1]  applied position: id of the last stream entry applied to this partition
-- KEYS[2]  fence: the highest worker lease epoch that has written this partition
-- KEYS[3]  generation: bumped by admin deletions and resets
-- KEYS[4]  sequence: the last stamp given out (boards order equal scores by it)
-- KEYS[5…9] the product's history: chunk list, entries kept, gap, exported, chunks dropped
--          (see src/history/mod.rs)
-- KEYS[10] a rebuild's hold: while it exists the product is being switched to its rebuilt
--          copy, and nothing is written (returns -2)
-- KEYS[11] the product's hidden players (moderation): their scores go to each board's
--          hidden copy instead of the board
-- KEYS[12] the product's change feed (a stream): board and rating events written with the
--          effects that caused them
-- KEYS[13…] the keys the operations touch (all in the same hash slot as KEYS[1]); a board,
--          its distinct scores and its hidden players are consecutive
-- ARGV[1]  the writer's lease epoch
-- ARGV[2]  the generation the writer planned with ('' for none)
-- ARGV[3]  the applied position the writer planned after ('' for none)
-- ARGV[4]  number of entries the call applies (returned)
-- ARGV[5]  the history chunk of the call's entries ('' for none)
-- ARGV[6]  history retention: most entries kept (0: no limit)
-- ARGV[7]  history retention: the oldest id kept ('' for no limit)
-- ARGV[8]  change feed entries kept, about
-- ARGV[9]  number of entries sent: those with operations and always the last (entries
--          without operations change nothing but the position, which the last one sets);
--          then per entry sent, in stream order:
--            entry id, number of operations, then per operation:
--              command, index into KEYS of its (first) key, the number of arguments unless
--              `fixed_args` knows it, arguments… (BOARD's first ones are KEYS indexes: see
--              there)
--
-- The worker plans only entries after the applied position it knows. Unless the store holds
-- exactly that position and generation, its view is stale (or a commit it sent before this
-- one failed) and nothing is written: returns -1. Otherwise returns the number of entries
-- applied.

-- Whether stream id a is before b (`<ms>-<seq>`, compared as numbers).
local function id_before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

-- The stamp of the entry being applied (given out on first use: see BOARD).
local entry_stamp
-- The last stamp given out (KEYS[4]), loaded on first use.
local sequence

local function stamp()
  if not entry_stamp then
    sequence = (sequence or tonumber(redis.call('GET', KEYS[4]) or '0')) + 1
    entry_stamp = struct.pack('>I8', sequence)
  end
  return entry_stamp
end

-- A player entering a period board drops their stamps of the same board and window whose
-- period board is gone (expired or reset), so stats hashes do not collect one per period.
-- `field` is `~<board>@<window>:<period>`, the board key `<prefix>:board:<board>@…` (or, for a
-- hidden player, `<prefix>:hidden:<board>@…`: all of their members are in hidden copies).
local function forget_gone_stamps(stamps, field, board)
  local window = string.match(field, '^(~[^@]*@[^:]*:)')
  if not window then return end
  local boards = string.sub(board, 1, #board - #field + 1)
  for _, other in ipairs(redis.call('HKEYS', stamps)) do
    if other ~= field and string.sub(other, 1, #window) == window
        and redis.call('EXISTS', boards .. string.sub(other, 2)) == 0 then
      redis.call('HDEL', stamps, other)
    end
  end
end

-- Boards (by the KEYS index of their first key; negated for their hidden players) whose keys
-- this call has set to expire.
local expiring = {}

-- Whether a player is hidden from the product's boards; looked up once per player per call,
-- and not at all while nobody is hidden.
local anyone_hidden
local hidden_players = {}
local function is_hidden(player)
  if anyone_hidden == nil then anyone_hidden = redis.call('EXISTS', KEYS[11]) == 1 end
  if not anyone_hidden then return false end
  local hidden = hidden_players[player]
  if hidden == nil then
    hidden = redis.call('HEXISTS', KEYS[11], player) == 1
    hidden_players[player] = hidden
  end
  return hidden
end

-- Per board (by KEYS index), the scores this call knows its distinct scores hold: adding one
-- again is skipped (scores repeat a lot within a call: small win counts, 0 for losers).
-- A board with several columns notes `<tail><score>` (`tail`: the other columns' bytes).
local scores_noted = {}
local function note_score(k, distinct, score, tail)
  local noted = scores_noted[k]
  if not noted then
    noted = {}
    scores_noted[k] = noted
  end
  local key = tail == '' and score or (tail .. num(score))
  if not noted[key] then
    redis.call('ZADD', distinct, num(-score), tail .. num(score))
    noted[key] = true
  end
end

-- Boards with several score columns. A column's stored value `u` ranks lower first: the value
-- for an ascending column, its negation for a descending one, +inf while the player has none
-- (a max, min or last column they never got a value for). The first column's `u` is the
-- sorted set's score; the others' are 8 bytes each at the start of the member, in an
-- encoding whose byte order is numeric order (leaderboards::rank decodes it the same way).
local INF = math.huge

local function sortable(u)
  if u == 0 then u = 0 end
  local bytes = struct.pack('>d', u)
  local out = {}
  if string.byte(bytes, 1) >= 128 then
    for i = 1, 8 do out[i] = string.char(255 - string.byte(bytes, i)) end
  else
    out[1] = string.char(string.byte(bytes, 1) + 128)
    out[2] = string.sub(bytes, 2)
  end
  return table.concat(out)
end

local function unsortable(bytes)
  local out = {}
  if string.byte(bytes, 1) >= 128 then
    out[1] = string.char(string.byte(bytes, 1) - 128)
    out[2] = string.sub(bytes, 2)
  else
    for i = 1, 8 do out[i] = string.char(255 - string.byte(bytes, i)) end
  end
  return (struct.unpack('>d', table.concat(out)))
end

-- A column update list: per column `<how><order><value>` (how: s sum, x max, n min, l last;
-- order: a ascending, d descending; value empty for none, or `~<stat>`: that stat of the
-- player, read from `stats`, their stats hash), comma-separated.
local function parse_columns(text, stats)
  local columns = {}
  for how, order, value in string.gmatch(text, '(%a)(%a)([^,]*)') do
    local given = tonumber(value)
    if string.sub(value, 1, 1) == '~' then
      given = tonumber(redis.call('HGET', stats, string.sub(value, 2)) or '')
    end
    columns[#columns + 1] = { how = how, asc = order == 'a', value = given }
  end
  return columns
end

-- A player's columns after an update: the new board score (the first column's `-u`) and the
-- other columns' bytes; `stored` and `tail` are what the board holds (nil: not on it).
local function combine_columns(columns, stored, tail)
  local first
  local rest = {}
  for i, column in ipairs(columns) do
    local u
    if stored then
      u = i == 1 and tonumber(stored) or unsortable(string.sub(tail, 8 * i - 15, 8 * i - 8))
    end
    local value
    if u ~= nil and u ~= INF then
      value = column.asc and u or -u
    elseif u == nil and column.how == 's' then
      value = 0
    end
    local given = column.value
    if given then
      if column.how == 's' then
        value = (value or 0) + given
      elseif column.how == 'l' or value == nil or (column.how == 'x' and given > value)
          or (column.how == 'n' and given < value) then
        value = given
      end
    end
    u = INF
    if value ~= nil then u = column.asc and value or -value end
    if i == 1 then first = u else rest[#rest + 1] = sortable(u) end
  end
  return -first, table.concat(rest)
end

-- The change feed: entries kept per product (approximately: Redis trims whole stream nodes;
-- the oldest go first).
local FEED_KEPT = ARGV[8]
-- The id of the stream entry being applied (its feed entries name it as their cause).
local entry_id

-- Appends one feed entry: its type, then field/value pairs; the cause is the entry applied.
local function feed(kind, ...)
  redis.call('XADD', KEYS[12], 'MAXLEN', '~', FEED_KEPT, '*', 'type', kind, 'entry', entry_id, ...)
end

-- The feed entries of a player's move on one board (or period board) whose feed follows its
-- top `top`: entering it, and each player of it passed on the way up, also one pushed out of
-- it (`old_rank`: where the player was before, 0-based, nil when new to the board; `rank`:
-- where they are now). Those passed were at `rank`…`old_rank - 1` and are one lower now.
local function feed_ranks(board, name, period, player, top, rank, old_rank, score)
  if rank >= top then return end
  if not old_rank or old_rank >= top then
    feed('entered_top', 'board', name, 'period', period, 'user_id', player, 'rank', rank + 1,
      'score', num(score))
  end
  local last = top
  if old_rank and old_rank < last then last = old_rank end
  if last > rank then
    local passed = redis.call('ZRANGE', board, rank + 1, last)
    for i, member in ipairs(passed) do
      feed('overtaken', 'board', name, 'period', period, 'user_id', string.sub(member, 9),
        'rank', rank + 1 + i, 'by', player)
    end
  end
end

-- The feed entry of a period's close, made when the next period of its window begins (its first
-- score, on `board`): the closed period's top `top`, once (a marker beside the feed, expiring
-- with the closed board, or kept like a season's board that never expires), and only if the
-- closed board is still there.
local function feed_closed(board, name, period, previous, top)
  local closed = string.sub(board, 1, #board - #period) .. previous
  local expires = redis.call('PEXPIRETIME', closed)
  if expires == -2 then return end
  local marker = KEYS[12] .. ':closed:' .. name .. '@' .. previous
  local marked
  if expires > 0 then
    marked = redis.call('SET', marker, '1', 'NX', 'PXAT', expires)
  else
    marked = redis.call('SET', marker, '1', 'NX')
  end
  if not marked then return end
  local rows = redis.call('ZRANGE', closed, 0, top - 1, 'WITHSCORES')
  local standings = {}
  for i = 1, #rows, 2 do
    standings[#standings + 1] = '{"rank":' .. ((i + 1) / 2) .. ',"user_id":'
      .. cjson.encode(string.sub(rows[i], 9)) .. ',"score":' .. num(-tonumber(rows[i + 1])) .. '}'
  end
  feed('period_closed', 'board', name, 'period', previous, 'top',
    '[' .. table.concat(standings, ',') .. ']')
end

-- Operations whose number of arguments is fixed (so the caller does not send it, and fewer
-- arguments are sent and converted); commit.rs's FIXED_ARGS must say the same.
local fixed_args = {
  HMAX = 2, HMIN = 2, STREAK = 2, HISTORY = 2, HINCRBY = 2, HINCRBYFLOAT = 2,
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
  -- A feed entry planned by the worker (a rating change): its type and field/value pairs.
  FEED = function(_, kind, ...)
    feed(kind, ...)
  end,
  -- Newest first, at most `limit` entries.
  HISTORY = function(k, limit, entry)
    local key = KEYS[k]
    redis.call('LPUSH', key, entry)
    redis.call('LTRIM', key, 0, tonumber(limit) - 1)
  end,
  -- A player's score change on one board, on each of its targets (all-time, then each
  -- window's period; each kept in rank order, see rank.lua). Arguments: the KEYS index of the
  -- player's stats hash (which holds their stamps), the KEYS index of each target board (its
  -- distinct scores next), `how` (sum, max, min, last, ensure: add with 0 unless present, or
  -- columns: a board with several score columns, the value their updates, see
  -- parse_columns), the value, the player, the board's name and the top its feed follows (0: no feed), then
  -- per target its stamp field, expiry ('' for never, else Unix seconds) and, for a period
  -- board with a feed, the previous period's suffix ('' otherwise). A player who
  -- reaches a new score gets the entry's stamp: among equal scores, earlier first. A hidden
  -- player's scores move the same way in each board's hidden copy (no distinct scores), where
  -- un-hiding finds them, and make no feed entries.
  BOARD = function(_, s, ...)
    local a = { ... }
    local n = (#a - 5) / 4
    local how, value, player, name = a[n + 1], a[n + 2], a[n + 3], a[n + 4]
    local top = tonumber(a[n + 5])
    local stamps = KEYS[tonumber(s)]
    local fields = {}
    for t = 1, n do fields[t] = a[n + 3 + 3 * t] end
    local old_stamps = redis.call('HMGET', stamps, unpack(fields))
    -- A player without a stamp on the all-time board never had one on its periods either
    -- (they are written together), so has no stamps of gone periods to drop.
    local returning = string.find(fields[1], '@', 1, true) ~= nil or old_stamps[1]
    local new_stamps = {}
    local hidden = is_hidden(player)
    local columns = how == 'columns' and parse_columns(value, stamps)
    for t = 1, n do
      local k, field, expire_at, previous = tonumber(a[t]), fields[t], a[n + 4 + 3 * t], a[n + 5 + 3 * t]
      local board, distinct = KEYS[k], KEYS[k + 1]
      local feeds = top > 0 and not hidden
      if hidden then board, distinct, k = KEYS[k + 2], nil, -k end
      local old_stamp = old_stamps[t]
      local old_member = old_stamp and (old_stamp .. player)
      local old = old_member and redis.call('ZSCORE', board, old_member)
      local was = old and -tonumber(old)
      local new
      local old_tail, new_tail = '', ''
      if columns then
        old_tail = old and string.sub(old_stamp, 1, #old_stamp - 8) or ''
        new, new_tail = combine_columns(columns, old, old_tail)
      elseif how == 'ensure' then
        if not was then new = 0 end
      elseif how == 'sum' then
        new = (was or 0) + tonumber(value)
      else
        local given = tonumber(value)
        if not was or how == 'last' or (how == 'max' and given > was) or (how == 'min' and given < was) then
          new = given
        end
      end
      if new ~= nil and (new ~= was or new_tail ~= old_tail) then
        local old_rank = feeds and was and redis.call('ZRANK', board, old_member)
        local member = new_tail .. stamp() .. player
        -- In before out: a set emptied in between would be deleted by Redis and re-created
        -- without a period board's expiry (a board with one player whose score changes).
        redis.call('ZADD', board, num(-new), member)
        if distinct then note_score(k, distinct, new, new_tail) end
        if was then
          if old_member ~= member then redis.call('ZREM', board, old_member) end
          if distinct and forget_score(board, distinct, was, old_tail) then
            scores_noted[k][old_tail == '' and was or (old_tail .. num(was))] = nil
          end
        end
        if feeds then
          local period = string.match(field, '@(.*)$') or ''
          if previous ~= '' and not was and redis.call('ZCARD', board) == 1 then
            feed_closed(board, name, period, previous, top)
          end
          feed_ranks(board, name, period, player, top, redis.call('ZRANK', board, member),
            old_rank or nil, new)
          if was and period == '' and (how == 'max' or how == 'min') then
            feed('personal_best', 'board', name, 'user_id', player, 'score', num(new),
              'previous', num(was))
          end
        end
        local prefix = new_tail .. entry_stamp
        if old_stamp ~= prefix then
          new_stamps[#new_stamps + 1] = field
          new_stamps[#new_stamps + 1] = prefix
        end
        if not was and expire_at ~= '' then
          -- Keys keep their expiry when written, and a period board's keys are created only
          -- when a player first enters it: setting it then is enough, and once per call is
          -- enough while the keys exist (players only ever enter a board here, so none can
          -- empty and vanish; but an expiry already past deletes them at once).
          if not expiring[k] then
            redis.call('EXPIREAT', board, expire_at)
            if distinct then redis.call('EXPIREAT', distinct, expire_at) end
            expiring[k] = redis.call('EXISTS', board) == 1
          end
          if returning then forget_gone_stamps(stamps, field, board) end
        end
      end
    end
    if #new_stamps > 0 then redis.call('HSET', stamps, unpack(new_stamps)) end
  end,
}

local epoch = tonumber(ARGV[1])
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if fence > epoch then
  return redis.error_reply('FENCED lease epoch ' .. epoch .. ' is older than ' .. fence)
end

local n_entries, n_sent = tonumber(ARGV[4]), tonumber(ARGV[9])
if n_sent == 0 then return 0 end
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[2] or (redis.call('GET', KEYS[1]) or '') ~= ARGV[3] then
  return -1
end
if redis.call('EXISTS', KEYS[10]) == 1 then return -2 end
if fence < epoch then
  redis.call('SET', KEYS[2], epoch)
end

-- Appends the call's history chunk; drops chunks from the head past the retention. `gap`
-- records up to where the history misses applied entries: those applied before it was kept
-- (or while it was off), and those trimmed.
local function keep_history(chunk)
  local events, kept_key, gap, exported, dropped = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
  if ARGV[3] ~= '' then
    local tail = redis.call('LINDEX', events, -1)
    local recorded = tail and string.match(tail, '^%S+ (%S+) ')
    if not recorded then
      recorded = redis.call('GET', exported)
      local trimmed = redis.call('GET', gap)
      if trimmed and (not recorded or id_before(recorded, trimmed)) then recorded = trimmed end
    end
    if recorded ~= ARGV[3] then redis.call('SET', gap, ARGV[3]) end
  end
  redis.call('RPUSH', events, chunk)
  local kept = redis.call('INCRBY', kept_key, tonumber(string.match(chunk, '^%S+ %S+ (%d+)\n')))
  local max_entries, min_id = tonumber(ARGV[6]), ARGV[7]
  while true do
    local head = redis.call('LINDEX', events, 0)
    if not head then break end
    local last, n = string.match(head, '^%S+ (%S+) (%d+)\n')
    n = tonumber(n)
    if not ((max_entries > 0 and kept - n >= max_entries) or (min_id ~= '' and id_before(last, min_id))) then
      break
    end
    redis.call('LPOP', events)
    kept = redis.call('DECRBY', kept_key, n)
    redis.call('INCR', dropped)
    redis.call('SET', gap, last)
  end
end

if ARGV[5] ~= '' then keep_history(ARGV[5]) end

local i = 10
local last
for _ = 1, n_sent do
  last = ARGV[i]
  entry_id = last
  entry_stamp = nil
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
if sequence then redis.call('SET', KEYS[4], num(sequence)) end
return n_entries
