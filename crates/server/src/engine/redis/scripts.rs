//! The Lua scripts of the Redis engine: atomic publish (epoch, offset, XADD, PUBLISH),
//! history reads and presence reads.

pub(super) const PUBLISH_LUA: &str = r"
-- KEYS: stream, meta, idempotency result
-- ARGV: payload, size, history ttl, meta ttl, new epoch, pubsub channel, delta, append, idem ttl,
--       version (0: unversioned), version epoch
if ARGV[9] ~= '0' then
  local found = redis.call('get', KEYS[3])
  if found then
    local at = string.find(found, ':', 1, true)
    return {tonumber(string.sub(found, 1, at - 1)), string.sub(found, at + 1)}
  end
end
local offset = 0
local epoch = ''
if ARGV[8] == '1' then
  epoch = redis.call('hget', KEYS[2], 'e')
  if not epoch then
    epoch = ARGV[5]
    redis.call('del', KEYS[1])
    redis.call('hset', KEYS[2], 'e', epoch, 's', 0)
  end
  if ARGV[10] ~= '0' then
    -- Versioned: a version not newer than the stream's (same version epoch or none given)
    -- is dropped and the top position returned.
    local prev = redis.call('hmget', KEYS[2], 'v', 've')
    if prev[1] and (ARGV[11] == '' or ARGV[11] == prev[2])
        and tonumber(prev[1]) >= tonumber(ARGV[10]) then
      return {tonumber(redis.call('hget', KEYS[2], 's') or '0'), epoch}
    end
    redis.call('hset', KEYS[2], 'v', ARGV[10], 've', ARGV[11])
  end
  offset = redis.call('hincrby', KEYS[2], 's', 1)
  redis.call('expire', KEYS[2], ARGV[4])
  redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-0', 'd', ARGV[1])
  redis.call('expire', KEYS[1], ARGV[3])
end
redis.call('publish', ARGV[6], 'p' .. offset .. ' ' .. epoch .. ' ' .. ARGV[7] .. ARGV[1])
if ARGV[9] ~= '0' then
  redis.call('set', KEYS[3], offset .. ':' .. epoch, 'EX', ARGV[9])
end
return {offset, epoch}
";

pub(super) const HISTORY_LUA: &str = r"
-- KEYS: stream, meta
-- ARGV: new epoch, meta ttl, mode (none|fwd|rev), start, end, count (0: all)
local epoch = redis.call('hget', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[2], 'e', epoch, 's', 0)
  redis.call('expire', KEYS[2], ARGV[2])
end
local top = tonumber(redis.call('hget', KEYS[2], 's') or '0')
local entries = {}
if ARGV[3] == 'fwd' then
  if ARGV[6] == '0' then
    entries = redis.call('xrange', KEYS[1], ARGV[4], ARGV[5])
  else
    entries = redis.call('xrange', KEYS[1], ARGV[4], ARGV[5], 'COUNT', ARGV[6])
  end
elseif ARGV[3] == 'rev' then
  if ARGV[6] == '0' then
    entries = redis.call('xrevrange', KEYS[1], ARGV[5], ARGV[4])
  else
    entries = redis.call('xrevrange', KEYS[1], ARGV[5], ARGV[4], 'COUNT', ARGV[6])
  end
end
return {top, epoch, entries}
";

pub(super) const PRESENCE_LUA: &str = r"
-- KEYS: expiry zset, data hash; ARGV: now
local expired = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1])
for _, client in ipairs(expired) do
  redis.call('hdel', KEYS[2], client)
end
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
return redis.call('hgetall', KEYS[2])
";
