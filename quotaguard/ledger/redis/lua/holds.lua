-- Holds and their end: un-holding, the idempotency key, lease expiry.
-- The state table is quotaguard/engine/reservations.py; these enforce it on the server.

-- A reservation's holds: [[key, unit, micro], ...] as JSON (micro as text), or the
-- space-separated "key unit micro ..." that records written before JSON still carry.
local function holds_of(text)
  local out = {}
  if not text or text == '' then return out end
  if string.sub(text, 1, 1) == '[' then
    for _, h in ipairs(cjson.decode(text)) do out[#out + 1] = {h[1], h[2], tonumber(h[3])} end
    return out
  end
  local parts = {}
  for token in string.gmatch(text, '%S+') do parts[#parts + 1] = token end
  for i = 1, #parts, 3 do out[#out + 1] = {parts[i], parts[i + 1], tonumber(parts[i + 2])} end
  return out
end

-- Whether a hold sent at sent_at (epoch us, or false) is inside the budget's report: one
-- that covers sent work holds every send completed before it (engine/rules.py).
local function is_inside(bkey, sent_at)
  if not sent_at then return false end
  local covers, at = unpack(redis.call('HMGET', bkey, 'covers', 'reported_at'))
  return covers == '1' and at ~= false and tonumber(sent_at) < tonumber(at)
end

local function unhold(rid)
  for _, h in ipairs(holds_of(redis.call('HGET', P .. 'r:' .. rid, 'holds'))) do
    local bkey = P .. 'b:' .. h[1]
    local sent_at = redis.call('HGET', P .. 's:' .. h[1], rid)
    if sent_at then redis.call('HDEL', P .. 's:' .. h[1], rid) end
    if redis.call('HEXISTS', bkey, 'unit') == 1 then
      redis.call('HINCRBY', bkey, 'reserved', fmt(-h[3]))
      redis.call('HINCRBY', bkey, 'outstanding', -1)
      if is_inside(bkey, sent_at) then redis.call('HINCRBY', bkey, 'inside', fmt(-h[3])) end
    end
  end
  redis.call('ZREM', KEYS[1], rid)
  redis.call('SREM', P .. 'doubt', rid)
end

local function forget_idem(rid)
  local idem = redis.call('HGET', P .. 'r:' .. rid, 'idem')
  if idem and idem ~= '' and redis.call('HGET', P .. 'idem', idem) == rid then
    redis.call('HDEL', P .. 'idem', idem)
  end
  redis.call('HSET', P .. 'r:' .. rid, 'idem', '') -- the record no longer claims the key
end

-- Its work may have been sent: bound to a job or task, or in doubt.
local function sent(rid)
  local ext, doubt = unpack(redis.call('HMGET', P .. 'r:' .. rid, 'ext', 'doubt'))
  return (ext and ext ~= '') or (doubt and doubt ~= '')
end

-- End a held reservation: released or expired.
local function finish(rid, state, now)
  local maybe_sent = sent(rid)
  unhold(rid)
  redis.call('HSET', P .. 'r:' .. rid, 'state', state, 'ended', fmt(now))
  -- An expired hold of work that may have been sent keeps its key: a retry must not resend it.
  if state ~= 'expired' or not maybe_sent then
    forget_idem(rid)
    redis.call('ZADD', P .. 'ended', fmt(now), rid)
  else
    redis.call('SADD', P .. 'lapsed', rid) -- the work may have run: its cost is still owed
  end
end

local function expire_due(now)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
  for _, rid in ipairs(due) do finish(rid, 'expired', now) end
  return #due
end
