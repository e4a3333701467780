--! needs: base
-- bind: rid, external_id -> {'notfound'} | {'ok', reservation}

local rid, ext = ARGV[3], ARGV[4]
local old = redis.call('HGET', P .. 'r:' .. rid, 'ext')
if not redis.call('HGET', P .. 'r:' .. rid, 'id') then return {'notfound'} end
if old and old ~= '' and redis.call('HGET', P .. 'ext', old) == rid then
  redis.call('HDEL', P .. 'ext', old) -- a rebind replaces the old id
end
redis.call('HSET', P .. 'r:' .. rid, 'ext', ext)
redis.call('HSET', P .. 'ext', ext, rid)
if redis.call('HGET', P .. 'r:' .. rid, 'state') == 'expired' then
  redis.call('SADD', P .. 'lapsed', rid) -- bound after its lease lapsed: still owed
end
return {'ok', reservation(rid)}
