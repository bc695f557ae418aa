"""The Lua scripts the Redis store runs: each is atomic, so replicas sharing a store never race.

Keys, in this order for every script:
  1 <prefix>:captures  the stream; entry `<n>-0` is capture n, `<n>-<k>` (k > 0) marks a Clear
  2 <prefix>:last_id   the counter that hands out capture ids, across every replica
  3 <prefix>:bytes     the bytes the captures in the stream count against the byte bound
  4 <prefix>:sizes     a list of "<id> <size>", oldest first: what to subtract when trimming
  5 <prefix>:stats     a hash: evicted
  6 <prefix>:schemas   a hash: schema id -> the names of the fields in a capture's meta list
"""

from __future__ import annotations

# Capture ids are the stream's entry ids, so a new id must be above the stream's top entry. An entry
# written by hand above the counter moves the counter past it; one beyond what Lua's numbers hold
# exactly (16 digits and more, e.g. 18446744073709551615-0) could never be followed, so it and any
# like it are removed, and the stream's last id set back to the top that remains. Returns the top
# capture id and how many entries were removed.
_FOLLOW_THE_TOP = """
local function follow_the_top(stream)
  local removed = 0
  local beyond = redis.call('XRANGE', stream, '1000000000000000-0', '+', 'COUNT', 1000)
  if #beyond > 0 then
    for _, entry in ipairs(beyond) do
      removed = removed + redis.call('XDEL', stream, entry[1])
    end
    local rest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    redis.call('XSETID', stream, #rest > 0 and rest[1][1] or '0-1')
  end
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #last == 0 then return 0, removed end
  local ms = string.match(last[1][1], '^(%d+)-')
  return tonumber(ms), removed
end
"""

# ARGV: max_items, max_bytes, floor, schema id, schema, then per capture a head, the request and,
# when the head says so, the reply. The head is "<origin> <size> <reply kind>\n<meta>".
# The floor is the newest id the caller has seen: ids never go back, even after Redis lost its data.
# Trimming is exact (the sizes list says which entries go, XTRIM MINID removes them), so the stream
# holds what the bounds say, no more.
APPEND = (
    _FOLLOW_THE_TOP
    + """
local stream, counter, bytes_key, sizes, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local max_items, max_bytes, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSETNX', KEYS[6], ARGV[4], ARGV[5])
local n = tonumber(redis.call('GET', counter) or '0')
if n < floor then n = floor end
local top, removed = follow_the_top(stream)
if n < top then n = top end
local first = n + 1
local added = 0
local i = 6
while i <= #ARGV do
  local head = ARGV[i]
  local line = string.find(head, '\\n', 1, true)
  local origin, size, kind = string.match(string.sub(head, 1, line - 1), '^(%S+) (%d+) (%a)$')
  local meta = string.sub(head, line + 1)
  n = n + 1
  local id = n .. '-0'
  if kind == 'r' then
    redis.call('XADD', stream, id, 'o', origin, 'm', meta, 'q', ARGV[i + 1], 'r', ARGV[i + 2])
    i = i + 3
  else
    redis.call('XADD', stream, id, 'o', origin, 'm', meta, 'q', ARGV[i + 1])
    i = i + 2
  end
  redis.call('RPUSH', sizes, n .. ' ' .. size)
  added = added + tonumber(size)
end
redis.call('SET', counter, n)
local total = redis.call('INCRBY', bytes_key, added)
local count = redis.call('LLEN', sizes)
local evicted, last_removed = 0, nil
while count > max_items or (total > max_bytes and count > 1) do
  local entry = redis.call('LPOP', sizes)
  if not entry then break end
  local space = string.find(entry, ' ')
  last_removed = tonumber(string.sub(entry, 1, space - 1))
  total = total - tonumber(string.sub(entry, space + 1))
  count = count - 1
  evicted = evicted + 1
end
if last_removed then
  redis.call('XTRIM', stream, 'MINID', (last_removed + 1) .. '-0')
  redis.call('SET', bytes_key, total)
  redis.call('HINCRBY', stats, 'evicted', evicted)
end
return {first, n, removed}
"""
)

# ARGV: floor. Empties the stream and leaves one marker entry `<last id>-<k>`, so every replica's
# reader sees the Clear (and a replica started later does not load what was cleared).
CLEAR = (
    _FOLLOW_THE_TOP
    + """
local stream, counter, bytes_key, sizes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n = tonumber(redis.call('GET', counter) or '0')
local floor = tonumber(ARGV[1])
if n < floor then n = floor end
local top = follow_the_top(stream)
if n < top then n = top end
redis.call('SET', counter, n)
local removed = redis.call('LLEN', sizes)
redis.call('DEL', sizes)
redis.call('SET', bytes_key, 0)
redis.call('XTRIM', stream, 'MINID', (n + 1) .. '-0')
local marker = redis.call('XADD', stream, n .. '-*', 'c', removed)
return {removed, marker}
"""
)
