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

-- What un-holding these holds touches (the read phase): each budget's hash and sent set.
local function want_holds(held)
  for _, h in ipairs(held) do
    want('b:' .. h[1])
    want('s:' .. h[1])
  end
end

-- What ending a held reservation touches (the read phase).
local function want_end(rid)
  if want('r:' .. rid) then want_holds(holds_of(redis.call('HGET', K('r:' .. rid), 'holds'))) end
  want('leases')
  want('doubt')
  want('idem')
  want('lapsed')
  want('ended')
end

local function unhold(rid)
  for _, h in ipairs(holds_of(redis.call('HGET', K('r:' .. rid), 'holds'))) do
    local bkey = K('b:' .. h[1])
    local sent_at = redis.call('HGET', K('s:' .. h[1]), rid)
    if sent_at then redis.call('HDEL', K('s:' .. h[1]), rid) end
    if redis.call('HEXISTS', bkey, 'unit') == 1 then
      redis.call('HINCRBY', bkey, 'reserved', fmt(-h[3]))
      redis.call('HINCRBY', bkey, 'outstanding', -1)
      if is_inside(bkey, sent_at) then redis.call('HINCRBY', bkey, 'inside', fmt(-h[3])) end
    end
  end
  redis.call('ZREM', K('leases'), rid)
  redis.call('SREM', K('doubt'), rid)
end

local function forget_idem(rid)
  local idem = redis.call('HGET', K('r:' .. rid), 'idem')
  if idem and idem ~= '' and redis.call('HGET', K('idem'), idem) == rid then
    redis.call('HDEL', K('idem'), idem)
  end
  redis.call('HSET', K('r:' .. rid), 'idem', '') -- the record no longer claims the key
end

-- Its work may have been sent: bound to a job or task, or in doubt.
local function sent(rid)
  local ext, doubt = unpack(redis.call('HMGET', K('r:' .. rid), 'ext', 'doubt'))
  return (ext and ext ~= '') or (doubt and doubt ~= '')
end

-- End a held reservation: released or expired.
local function finish(rid, state, now)
  local maybe_sent = sent(rid)
  unhold(rid)
  redis.call('HSET', K('r:' .. rid), 'state', state, 'ended', fmt(now))
  -- An expired hold of work that may have been sent keeps its key: a retry must not resend it.
  if state ~= 'expired' or not maybe_sent then
    forget_idem(rid)
    redis.call('ZADD', K('ended'), fmt(now), rid)
  else
    redis.call('SADD', K('lapsed'), rid) -- the work may have run: its cost is still owed
  end
end

-- The read phase of expire_due(now): want() what expiring the due leases touches.
local function want_due(now)
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', K('leases'), '-inf', fmt(now))) do
    want_end(rid)
  end
end

local function expire_due(now)
  local due = redis.call('ZRANGEBYSCORE', K('leases'), '-inf', fmt(now))
  for _, rid in ipairs(due) do finish(rid, 'expired', now) end
  return #due
end
