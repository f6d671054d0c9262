#!lua name=memq

-- The tokio-memq function library (Redis 7.0 or newer). Keys of a topic:
-- KEYS[1] the log stream, KEYS[2] the meta hash.

-- Appends the messages ARGV[3..] as one contiguous run of dense IDs
-- 0-(offset + 1), then trims the log to ARGV[1] entries (0: no limit),
-- all in one atomic call. ARGV[2] is the topic's incarnation: a publish
-- meant for a topic deleted and created again fails instead of landing in
-- the new one. Each message is a count k followed by k field/value pairs
-- (its payload `p`, key `k`, format `f`, headers `h.<name>`); the
-- function adds the server time `t`. Returns {first offset, count, evicted}.
local function publish(keys, args)
  local log, meta = keys[1], keys[2]
  local maxlen = tonumber(args[1])
  local incarnation = redis.call('HGET', meta, 'incarnation')
  if incarnation == false or incarnation ~= args[2] then
    return redis.error_reply('MEMQGONE topic was deleted or re-created')
  end
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local first = nil
  local n = 0
  local i = 3
  while i <= #args do
    local k = tonumber(args[i])
    local fields = {'t', ms}
    for j = 1, k * 2 do
      fields[#fields + 1] = args[i + j]
    end
    local id = redis.call('XADD', log, '0-*', unpack(fields))
    if first == nil then
      first = id
    end
    n = n + 1
    i = i + 1 + k * 2
  end
  local evicted = 0
  if maxlen > 0 then
    evicted = redis.call('XTRIM', log, 'MAXLEN', '=', maxlen)
    if evicted > 0 then
      redis.call('HINCRBY', meta, 'evicted', evicted)
    end
  end
  redis.call('HINCRBY', meta, 'published', n)
  local seq = tonumber(string.match(first, '^0%-(%d+)$'))
  return {seq - 1, n, evicted}
end

redis.register_function('memq_publish', publish)
