#!lua name=memq

-- The tokio-memq function library (Redis 7.0 or newer). Keys of a topic:
-- KEYS[1] the log stream, KEYS[2] the meta hash, KEYS[3] the list of
-- removal runs (topics with a TTL only).

-- How many removal runs are kept exactly; older ones merge into a prefix
-- of which only the number evicted is kept (as in memq-core).
local MAX_RUNS = 256

-- The offset of the entry ID `0-s`: s - 1.
local function offset_of(id)
  return tonumber(string.match(id, '^0%-(%d+)$')) - 1
end

-- Records that the offsets [from, to) were removed for `kind` ('e'
-- evicted, 'x' expired): runs are "end:kind" items, each starting where
-- the previous one ends.
local function record(removed, meta, from, to, kind)
  if to <= from then
    return
  end
  local last = redis.call('LINDEX', removed, -1)
  if last then
    local e, k = string.match(last, '^(%d+):(%a)$')
    if k == kind and tonumber(e) == from then
      redis.call('LSET', removed, -1, to .. ':' .. kind)
      return
    end
  end
  redis.call('RPUSH', removed, to .. ':' .. kind)
  if redis.call('LLEN', removed) > MAX_RUNS then
    local oldest = redis.call('LPOP', removed)
    local e, k = string.match(oldest, '^(%d+):(%a)$')
    local merged_end = tonumber(redis.call('HGET', meta, 'merged_end') or '0')
    if k == 'e' then
      redis.call('HINCRBY', meta, 'merged_evicted', tonumber(e) - merged_end)
    end
    redis.call('HSET', meta, 'merged_end', e)
  end
end

-- Removes the messages published before `cutoff` (milliseconds) from the
-- front of the log, recording them as expired.
local function expire(log, meta, removed, cutoff)
  local head = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if #head == 0 or tonumber(head[1][2][2]) >= cutoff then
    return
  end
  local low = offset_of(head[1][1])
  local from = '-'
  local live = nil
  while live == nil do
    local batch = redis.call('XRANGE', log, from, '+', 'COUNT', 128)
    if #batch == 0 then
      break
    end
    for _, entry in ipairs(batch) do
      -- Every entry's first field is its publish time `t`.
      if tonumber(entry[2][2]) >= cutoff then
        live = entry[1]
        break
      end
    end
    from = '(' .. batch[#batch][1]
  end
  local to
  if live then
    redis.call('XTRIM', log, 'MINID', live)
    to = offset_of(live)
  else
    local info = redis.call('XINFO', 'STREAM', log)
    local last_id
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then
        last_id = info[i + 1]
      end
    end
    redis.call('XTRIM', log, 'MAXLEN', 0)
    to = offset_of(last_id) + 1
  end
  record(removed, meta, low, to, 'x')
end

-- The offset a consumer group reads next: the one after its last-delivered
-- ID (0 for `0-0`, or an ID this library never writes).
local function next_of_group(last_delivered)
  local s = string.match(last_delivered or '', '^0%-(%d+)$')
  return s and tonumber(s) or 0
end

-- The offsets [from, to) were evicted: each consumer group that had not
-- read them yet lost them, and is told (XREADGROUP passes over what was
-- trimmed without a word). The count is kept in the meta hash under
-- `lost:<group>`, for the next member that reads to take and report
-- (`take_lost`).
local function count_group_losses(log, meta, from, to)
  if to <= from then
    return
  end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', log)) do
    local name, next = nil, 0
    for i = 1, #g, 2 do
      if g[i] == 'name' then
        name = g[i + 1]
      elseif g[i] == 'last-delivered-id' then
        next = next_of_group(g[i + 1])
      end
    end
    local lost = to - math.max(from, next)
    if name and lost > 0 then
      redis.call('HINCRBY', meta, 'lost:' .. name, lost)
    end
  end
end

-- Appends the messages ARGV[4..] as one contiguous run of dense IDs
-- 0-(offset + 1), then trims the log to ARGV[1] entries (0: no limit),
-- all in one atomic call. ARGV[2] is the topic's incarnation: a publish
-- meant for a topic deleted and created again fails instead of landing in
-- the new one. ARGV[3] is the topic's TTL in milliseconds (0: none): the
-- expired messages are removed first, and every removal is recorded with
-- its cause, so that readers can tell exactly how many they lost to
-- eviction (expired ones are skipped silently). Each message is a count k
-- followed by k field/value pairs (its payload `p`, key `k`, format `f`,
-- headers `h.<name>`); the function adds the server time `t` as the first
-- field. Returns {first offset, count}.
local function publish(keys, args)
  local log, meta, removed = keys[1], keys[2], keys[3]
  local maxlen = tonumber(args[1])
  local incarnation = redis.call('HGET', meta, 'incarnation')
  if incarnation == false or incarnation ~= args[2] then
    return redis.error_reply('MEMQGONE topic was deleted or re-created')
  end
  local ttl = tonumber(args[3])
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if ttl > 0 then
    expire(log, meta, removed, ms - ttl)
  end
  -- Written once: a number argument is converted for every call. ('%.0f':
  -- exact for any time in milliseconds, where '%d' converts to a C long,
  -- 32 bits on some builds.)
  local stamp = string.format('%.0f', ms)
  -- Without a TTL the last XADD trims: the length before tells what it
  -- evicted.
  local len_before = 0
  if maxlen > 0 and ttl == 0 then
    len_before = redis.call('XLEN', log)
  end
  local first = nil
  local last = nil
  local n = 0
  local i = 4
  local nargs = #args
  while i <= nargs do
    local k = tonumber(args[i])
    local trim = maxlen > 0 and ttl == 0 and i + 1 + k * 2 > nargs
    local id
    if trim then
      -- The last message trims the log to `maxlen` as it is added: one
      -- command fewer than a separate XTRIM, with the same result (a run
      -- longer than `maxlen` keeps its last `maxlen` messages). Without a
      -- TTL every removal is an eviction: nothing to record.
      id = redis.call('XADD', log, 'MAXLEN', '=', args[1], '0-*', 't', stamp, unpack(args, i + 1, i + k * 2))
    elseif k == 1 then
      -- A payload alone (the common case), without unpacking.
      id = redis.call('XADD', log, '0-*', 't', stamp, args[i + 1], args[i + 2])
    else
      id = redis.call('XADD', log, '0-*', 't', stamp, unpack(args, i + 1, i + k * 2))
    end
    if first == nil then
      first = id
    end
    last = id
    n = n + 1
    i = i + 1 + k * 2
  end
  if maxlen > 0 and ttl > 0 and last then
    local len = redis.call('XLEN', log)
    if len > maxlen then
      local high = offset_of(last) + 1
      redis.call('XTRIM', log, 'MAXLEN', '=', maxlen)
      record(removed, meta, high - len, high - maxlen, 'e')
      count_group_losses(log, meta, high - len, high - maxlen)
    end
  elseif maxlen > 0 and last then
    local high = offset_of(last) + 1
    local low_before = high - n - len_before
    local low_after = high - redis.call('XLEN', log)
    count_group_losses(log, meta, low_before, low_after)
  end
  -- (No counters are kept: offsets are dense, so what was published and
  -- what was trimmed follow from the stream's last ID and its length.)
  return {offset_of(first), n}
end

redis.register_function('memq_publish', publish)

-- Restarts the ack timeout of what member ARGV[2] of group ARGV[1] holds
-- (KEYS[1] the log): each message pending to it is claimed by it again
-- (idle from now), its delivery count unchanged. Atomic, so nothing
-- another member took over meanwhile is taken back. Returns how many.
local function keep_alive(keys, args)
  local log, group, member = keys[1], args[1], args[2]
  local round = 512
  local from = '-'
  local n = 0
  while true do
    local pending = redis.call('XPENDING', log, group, from, '+', round, member)
    if #pending == 0 then
      return n
    end
    local ids = {}
    for i, entry in ipairs(pending) do
      ids[i] = entry[1]
    end
    redis.call('XCLAIM', log, group, member, 0, unpack(ids), 'JUSTID')
    n = n + #ids
    if #pending < round then
      return n
    end
    from = '(' .. ids[#ids]
  end
end

redis.register_function('memq_keep_alive', keep_alive)

-- Hands the message ARGV[3] (an entry ID) back to group ARGV[1], if member
-- ARGV[2] holds it (KEYS[1] the log): marked idle for ARGV[4] ms, so the
-- next member that looks takes it over; ARGV[5], when given, sets its
-- delivery count (a message the member never handed on goes back with
-- the count it had before). Atomic, so a message another member took
-- over meanwhile is left alone. Returns 1 if it was handed back.
local function release(keys, args)
  local log, group, member, id, idle = keys[1], args[1], args[2], args[3], args[4]
  local held = redis.call('XPENDING', log, group, id, id, 1, member)
  if #held == 0 then
    return 0
  end
  if args[5] then
    redis.call('XCLAIM', log, group, member, 0, id, 'IDLE', idle, 'RETRYCOUNT', args[5], 'JUSTID')
  else
    redis.call('XCLAIM', log, group, member, 0, id, 'IDLE', idle, 'JUSTID')
  end
  return 1
end

redis.register_function('memq_release', release)

-- Takes what consumer group ARGV[1] lost to eviction since the last take
-- (KEYS[1] the meta hash; see `count_group_losses`): returns the count
-- and sets it back to 0, atomically, so that one member reports it.
local function take_lost(keys, args)
  local field = 'lost:' .. args[1]
  local n = tonumber(redis.call('HGET', keys[1], field) or '0')
  if n > 0 then
    redis.call('HDEL', keys[1], field)
  end
  return n
end

redis.register_function('memq_take_lost', take_lost)

-- Creates the settings of topic KEYS[1] (its meta hash) unless it has
-- them, all at once: the incarnation, then ARGV[2] max_messages and
-- ARGV[3] ttl_ms. The incarnation is the server's clock (seconds and
-- microseconds) and then ARGV[1], a count of the server's: a server
-- restarted without its data counts from 1 again, and a topic made again
-- then must not take the incarnation of the one it lost (handles of that
-- one would read and write the new one). Settings left without an
-- incarnation (written before this function, torn by a delete) are
-- replaced. Returns 1 when it created them, 0 when they were there.
local function create(keys, args)
  local meta = keys[1]
  if redis.call('HEXISTS', meta, 'incarnation') == 1 then
    return 0
  end
  local t = redis.call('TIME')
  redis.call('HSET', meta, 'incarnation', t[1] .. '.' .. t[2] .. '.' .. args[1],
    'max_messages', args[2], 'ttl_ms', args[3])
  return 1
end

redis.register_function('memq_create', create)

-- Deletes a topic at once: KEYS[1] is the set of topic names, KEYS[2..]
-- the topic's keys (its log, removal runs and meta hash; for a
-- partitioned topic its partition count and every partition's); ARGV[1]
-- its name. One call, so that a creation never lands between the keys
-- going and the name going (a topic with settings but no name listed).
-- Returns how many of the keys existed.
local function delete(keys, args)
  local n = 0
  local i = 2
  while i <= #keys do
    local last = math.min(i + 999, #keys)
    n = n + redis.call('DEL', unpack(keys, i, last))
    i = last + 1
  end
  redis.call('SREM', keys[1], args[1])
  return n
end

redis.register_function('memq_delete', delete)

-- Hands back up to ARGV[4] of the entries that member ARGV[2] of group
-- ARGV[1] holds in log KEYS[1], from ID ARGV[5] on ('-' for the first;
-- '(id' after id), made idle ARGV[3] ms so that the next member that looks
-- takes them over: the member is going. The look and the claim are one
-- call, so an entry another member took over in between is not claimed
-- back from it. Returns {how many, the last ID handed back}.
local function release_all(keys, args)
  local log, group, member, idle = keys[1], args[1], args[2], args[3]
  local held = redis.call('XPENDING', log, group, args[5], '+', tonumber(args[4]), member)
  if #held == 0 then
    return {0, args[5]}
  end
  local claim = {log, group, member, 0}
  for _, entry in ipairs(held) do
    claim[#claim + 1] = entry[1]
  end
  claim[#claim + 1] = 'IDLE'
  claim[#claim + 1] = idle
  claim[#claim + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(claim))
  return {#held, held[#held][1]}
end

redis.register_function('memq_release_all', release_all)
