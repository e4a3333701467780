--! needs: base holds
-- renew: [rid, now, clock|null, lease (us)]
-- -> {'notfound'} | {'skew', server_time} | {'ok', reservation}

local A = args({'id', 'int', 'int?', 'int'})
local rid = A[1]
local at, server = ledger_time(A[2], A[3])
if not at then return {'skew', fmt(server)} end
if redis.call('EXISTS', K('r:' .. rid)) == 0 then return {'notfound'} end
want_due(at)
local need = ask()
if need then return need end
expire_due(at) -- a lapsed lease is not renewed
if redis.call('HGET', K('r:' .. rid), 'state') == 'held' then
  redis.call('HSET', K('r:' .. rid), 'lease', fmt(at + A[4]))
  redis.call('ZADD', K('leases'), fmt(at + A[4]), rid)
end
return {'ok', reservation(rid)}
