//! The Lua scripts of the Redis map broker. Every script takes the time from Redis, so key
//! expiry does not depend on the nodes' clocks.

/// Sets or removes a key, appends the change to the stream, keeps the epoch and the top
/// offset, sets expiries and PUBLISHes the change with the key's previous entry.
pub(super) const MAP_PUBLISH_LUA: &str = r"
-- KEYS: state, order, expire, stream, meta
-- ARGV: key, payload, removed, stream size, stream ttl, meta ttl (0: none), key ttl ms (0: none),
--       new epoch, pubsub channel, delta, only if expired, options, unwritten ttl
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = ARGV[1]
local epoch = redis.call('hget', KEYS[5], 'e')
if not epoch then
  epoch = ARGV[8]
  redis.call('del', KEYS[4])
  redis.call('hset', KEYS[5], 'e', epoch, 's', 0)
  redis.call('expire', KEYS[5], ARGV[13])
end
local prev = redis.call('hget', KEYS[1], key)
if ARGV[3] == '1' then
  local suppressed = not prev
  if prev and ARGV[11] == '1' then
    local at = redis.call('zscore', KEYS[3], key)
    suppressed = (not at) or tonumber(at) > now
  end
  if suppressed then
    return {tonumber(redis.call('hget', KEYS[5], 's') or '0'), epoch, 1, 0}
  end
end
local offset = 0
if ARGV[4] ~= '0' then
  offset = redis.call('hincrby', KEYS[5], 's', 1)
  redis.call('xadd', KEYS[4], 'MAXLEN', ARGV[4], offset .. '-0', 'd', ARGV[2])
  redis.call('expire', KEYS[4], ARGV[5])
end
redis.call('hset', KEYS[5], 'o', ARGV[12])
local expire_at = 0
if ARGV[3] == '1' then
  redis.call('hdel', KEYS[1], key)
  redis.call('zrem', KEYS[2], key)
  redis.call('zrem', KEYS[3], key)
else
  redis.call('hset', KEYS[1], key, offset .. ' ' .. ARGV[2])
  redis.call('zadd', KEYS[2], 0, key)
  if ARGV[7] ~= '0' then
    expire_at = now + tonumber(ARGV[7])
    redis.call('zadd', KEYS[3], expire_at, key)
  end
end
if ARGV[6] ~= '0' then
  for i = 1, 3 do
    redis.call('expire', KEYS[i], ARGV[6])
  end
  redis.call('expire', KEYS[5], ARGV[6])
else
  redis.call('persist', KEYS[5])
end
local previous = ''
if prev and ARGV[3] ~= '1' then
  previous = string.sub(prev, string.find(prev, ' ', 1, true) + 1)
end
redis.call('publish', ARGV[9],
  'm' .. offset .. ' ' .. epoch .. ' ' .. ARGV[10] .. #ARGV[2] .. ' ' .. ARGV[2] .. previous)
return {offset, epoch, 0, expire_at}
";

/// Reads up to `limit + 1` live entries after a key, with the stream position.
pub(super) const MAP_STATE_LUA: &str = r"
-- KEYS: state, order, expire, meta
-- ARGV: after ('' from the start), limit + 1, new epoch, unwritten ttl
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('hget', KEYS[4], 'e')
if not epoch then
  epoch = ARGV[3]
  redis.call('hset', KEYS[4], 'e', epoch, 's', 0)
  redis.call('expire', KEYS[4], ARGV[4])
end
local top = tonumber(redis.call('hget', KEYS[4], 's') or '0')
local want = tonumber(ARGV[2])
local start = '-'
if ARGV[1] ~= '' then
  start = '(' .. ARGV[1]
end
local out = {}
local n = 0
while n < want do
  local keys = redis.call('zrangebylex', KEYS[2], start, '+', 'LIMIT', 0, want)
  for _, k in ipairs(keys) do
    if n >= want then
      break
    end
    local at = redis.call('zscore', KEYS[3], k)
    if (not at) or tonumber(at) > now then
      local v = redis.call('hget', KEYS[1], k)
      if v then
        out[#out + 1] = k
        out[#out + 1] = v
        n = n + 1
      end
    end
  end
  if #keys < want then
    break
  end
  start = '(' .. keys[#keys]
end
return {top, epoch, out}
";

/// Live keys of a channel.
pub(super) const MAP_STATS_LUA: &str = r"
-- KEYS: order, expire
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('zcard', KEYS[1]) - redis.call('zcount', KEYS[2], '-inf', now)
";

/// Extends a live key's expiry.
pub(super) const MAP_TOUCH_LUA: &str = r"
-- KEYS: state, expire; ARGV: key, key ttl ms
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then
  redis.call('zadd', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
end
return 0
";

/// Up to `ARGV[1]` members of a zset whose score (a time in ms) has passed, and the time.
pub(super) const MAP_DUE_LUA: &str = r"
-- KEYS: zset; ARGV: count
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {now, redis.call('zrangebyscore', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])}
";

/// Forgets a channel in the due set unless a later expiry was scheduled meanwhile.
pub(super) const MAP_UNSCHEDULE_LUA: &str = r"
-- KEYS: due set; ARGV: channel, time of the check (ms)
local at = redis.call('zscore', KEYS[1], ARGV[1])
if at and tonumber(at) <= tonumber(ARGV[2]) then
  redis.call('zrem', KEYS[1], ARGV[1])
end
return 0
";
