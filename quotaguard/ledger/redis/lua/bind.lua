--! needs: base holds
-- bind: [rid, external_id, sent_at|null] -> {'notfound'} | {'ok', reservation}
-- The work is found: no longer in doubt. sent_at null keeps the one recorded.

local A = args({'id', 'id', 'int?'})
local rid, ext = A[1], A[2]
local old = redis.call('HGET', P .. 'r:' .. rid, 'ext')
if not redis.call('HGET', P .. 'r:' .. rid, 'id') then return {'notfound'} end
if old and old ~= '' and redis.call('HGET', P .. 'ext', old) == rid then
  redis.call('HDEL', P .. 'ext', old) -- a rebind replaces the old id
end
redis.call('HSET', P .. 'r:' .. rid, 'ext', ext)
redis.call('HDEL', P .. 'r:' .. rid, 'doubt')
redis.call('SREM', P .. 'doubt', rid)
if A[3] ~= NULL then
  redis.call('HSET', P .. 'r:' .. rid, 'sent', fmt(A[3]))
  if redis.call('HGET', P .. 'r:' .. rid, 'state') == 'held' then
    -- Held: its holds may now be inside (or no longer inside) a covering report.
    for _, h in ipairs(holds_of(redis.call('HGET', P .. 'r:' .. rid, 'holds'))) do
      local bkey, skey = P .. 'b:' .. h[1], P .. 's:' .. h[1]
      local old = redis.call('HGET', skey, rid)
      local delta = (is_inside(bkey, fmt(A[3])) and h[3] or 0) - (is_inside(bkey, old) and h[3] or 0)
      if delta ~= 0 then redis.call('HINCRBY', bkey, 'inside', fmt(delta)) end
      redis.call('HSET', skey, rid, fmt(A[3]))
    end
  end
end
redis.call('HSET', P .. 'ext', ext, rid)
if redis.call('HGET', P .. 'r:' .. rid, 'state') == 'expired' then
  redis.call('SADD', P .. 'lapsed', rid) -- bound after its lease lapsed: still owed
end
return {'ok', reservation(rid)}
