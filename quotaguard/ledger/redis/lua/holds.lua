-- Holds and their end: un-holding, the idempotency key, lease expiry.
-- The state table is quotaguard/engine/reservations.py; these enforce it on the server.

-- holds: "key unit micro key unit micro ..." (budget keys and units contain no spaces)
local function holds_of(text)
  local out, parts = {}, {}
  for token in string.gmatch(text or '', '%S+') do parts[#parts + 1] = token end
  for i = 1, #parts, 3 do out[#out + 1] = {parts[i], parts[i + 1], tonumber(parts[i + 2])} end
  return out
end

local function unhold(rid)
  for _, h in ipairs(holds_of(redis.call('HGET', P .. 'r:' .. rid, 'holds'))) do
    local bkey = P .. 'b:' .. h[1]
    if redis.call('HEXISTS', bkey, 'unit') == 1 then
      redis.call('HINCRBY', bkey, 'reserved', fmt(-h[3]))
      redis.call('HINCRBY', bkey, 'outstanding', -1)
    end
  end
  redis.call('ZREM', KEYS[1], rid)
end

local function forget_idem(rid)
  local idem = redis.call('HGET', P .. 'r:' .. rid, 'idem')
  if idem and idem ~= '' and redis.call('HGET', P .. 'idem', idem) == rid then
    redis.call('HDEL', P .. 'idem', idem)
  end
  redis.call('HSET', P .. 'r:' .. rid, 'idem', '') -- the record no longer claims the key
end

-- End a held reservation: released or expired.
local function finish(rid, state, now)
  unhold(rid)
  redis.call('HSET', P .. 'r:' .. rid, 'state', state, 'ended', fmt(now))
  -- An expired hold of work that was sent (bound) keeps its key: a retry must not resend it.
  local ext = redis.call('HGET', P .. 'r:' .. rid, 'ext')
  if state ~= 'expired' or not ext or ext == '' then
    forget_idem(rid)
  else
    redis.call('SADD', P .. 'lapsed', rid) -- the work ran: its cost is still owed
  end
end

local function expire_due(now)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
  for _, rid in ipairs(due) do finish(rid, 'expired', now) end
  return #due
end
