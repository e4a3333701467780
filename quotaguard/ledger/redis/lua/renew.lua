--! needs: base holds
-- renew: rid, now, lease_until -> {'notfound'} | {'ok', reservation}

local rid, now = ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', P .. 'r:' .. rid) == 0 then return {'notfound'} end
expire_due(now) -- a lapsed lease is not renewed
if redis.call('HGET', P .. 'r:' .. rid, 'state') == 'held' then
  redis.call('HSET', P .. 'r:' .. rid, 'lease', ARGV[5])
  redis.call('ZADD', KEYS[1], ARGV[5], rid)
end
return {'ok', reservation(rid)}
