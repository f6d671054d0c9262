#!lua name=memq

-- The tokio-memq function library (Redis 7.0 or newer). Keys of a topic:
-- KEYS[1] the log stream, KEYS[2] the meta hash.

-- Appends the messages ARGV[3..] as one contiguous run of dense IDs
-- 0-(offset + 1), then trims the log to ARGV[1] entries (0: no limit),
-- all in one atomic call. ARGV[2] is the topic's incarnation: a publish
-- meant for a topic deleted and created again fails instead of landing in
-- the new one. Each message is a count k followed by k field/value pairs
-- (its payload `p`, key `k`, format `f`, headers `h.<name>`); the
-- function adds the server time `t`. Returns {first offset, count}.
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
  local nargs = #args
  while i <= nargs do
    local k = tonumber(args[i])
    local trim = maxlen > 0 and i + 1 + k * 2 > nargs
    local id
    if trim then
      -- The last message trims the log to `maxlen` as it is added: one
      -- command fewer than a separate XTRIM, with the same result (a run
      -- longer than `maxlen` keeps its last `maxlen` messages).
      id = redis.call('XADD', log, 'MAXLEN', '=', maxlen, '0-*', 't', ms, unpack(args, i + 1, i + k * 2))
    elseif k == 1 then
      -- A payload alone (the common case), without unpacking.
      id = redis.call('XADD', log, '0-*', 't', ms, args[i + 1], args[i + 2])
    else
      id = redis.call('XADD', log, '0-*', 't', ms, unpack(args, i + 1, i + k * 2))
    end
    if first == nil then
      first = id
    end
    n = n + 1
    i = i + 1 + k * 2
  end
  -- (No counters are kept: offsets are dense, so what was published and
  -- what was trimmed follow from the stream's last ID and its length.)
  local seq = tonumber(string.match(first, '^0%-(%d+)$'))
  return {seq - 1, n}
end

redis.register_function('memq_publish', publish)
