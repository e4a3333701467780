--! needs: base holds
-- bind: [rid, external_id, sent_at|null] -> {'notfound'} | {'ok', reservation}
-- The work is found: no longer in doubt. sent_at null keeps the one recorded.

local A = args({'id', 'id', 'int?'})
local rid, ext = A[1], A[2]
local old = redis.call('HGET', K('r:' .. rid), 'ext')
if not redis.call('HGET', K('r:' .. rid), 'id') then return {'notfound'} end
-- The read phase: what a new sent_at changes (a held reservation's holds), and the indexes.
local state, holds = unpack(redis.call('HMGET', K('r:' .. rid), 'state', 'holds'))
if A[3] ~= NULL and state == 'held' then want_holds(holds_of(holds)) end
want('ext')
want('doubt')
want('lapsed')
local need = ask()
if need then return need end
if old and old ~= '' and redis.call('HGET', K('ext'), old) == rid then
  redis.call('HDEL', K('ext'), old) -- a rebind replaces the old id
end
redis.call('HSET', K('r:' .. rid), 'ext', ext)
redis.call('HDEL', K('r:' .. rid), 'doubt')
redis.call('SREM', K('doubt'), rid)
if A[3] ~= NULL then
  redis.call('HSET', K('r:' .. rid), 'sent', fmt(A[3]))
  if redis.call('HGET', K('r:' .. rid), 'state') == 'held' then
    -- Held: its holds may now be inside (or no longer inside) a covering report.
    for _, h in ipairs(holds_of(redis.call('HGET', K('r:' .. rid), 'holds'))) do
      local bkey, skey = K('b:' .. h[1]), K('s:' .. h[1])
      local old = redis.call('HGET', skey, rid)
      local delta = (is_inside(bkey, fmt(A[3])) and h[3] or 0) - (is_inside(bkey, old) and h[3] or 0)
      if delta ~= 0 then redis.call('HINCRBY', bkey, 'inside', fmt(delta)) end
      redis.call('HSET', skey, rid, fmt(A[3]))
    end
  end
end
redis.call('HSET', K('ext'), ext, rid)
if redis.call('HGET', K('r:' .. rid), 'state') == 'expired' then
  redis.call('SADD', K('lapsed'), rid) -- bound after its lease lapsed: still owed
end
return {'ok', reservation(rid)}
