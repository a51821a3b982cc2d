-- Accounts for entries deleted or trimmed from the stream before the group read them. Once
-- the group has read everything there is and acknowledged it all, every entry ever added was
-- either acknowledged (counted with each acknowledgement) or never read: the difference, less what was
-- reported before (`base`), is new losses. Redis counts such entries as never read, so the
-- group's lag could show them forever: its read counter is set to the entries added.
--
-- KEYS[1] the event stream, KEYS[2] the group's counts (hash: `acked`, `base`)
-- ARGV[1] the group
-- Returns {newly lost, last delivered id}; {0, ''} while the group is not caught up.
local function field(flat, name)
  for i = 1, #flat, 2 do
    if flat[i] == name then return flat[i + 1] end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local stream = redis.call('XINFO', 'STREAM', KEYS[1])
local added = field(stream, 'entries-added')
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  if field(group, 'name') == ARGV[1] then
    local delivered = field(group, 'last-delivered-id')
    if delivered ~= field(stream, 'last-generated-id') or field(group, 'pending') > 0 then
      return {0, ''}
    end
    local acked = tonumber(redis.call('HGET', KEYS[2], 'acked') or '0')
    local base = redis.call('HGET', KEYS[2], 'base')
    if not base then
      -- First look: whatever happened before counting began is not reported.
      redis.call('HSET', KEYS[2], 'base', added - acked)
      return {0, delivered}
    end
    local lost = added - acked - tonumber(base)
    if lost > 0 then
      redis.call('HINCRBY', KEYS[2], 'base', lost)
    else
      lost = 0
    end
    local read = field(group, 'entries-read')
    if not read or read < added then
      redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], delivered, 'ENTRIESREAD', added)
    end
    return {lost, delivered}
  end
end
return {0, ''}
