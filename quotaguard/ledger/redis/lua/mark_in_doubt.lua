--! needs: base
-- mark_in_doubt: [rid, now, clock|null]
-- -> {'notfound'} | {'skew', server_time} | {'ok', reservation}
-- Only a held reservation is marked; a mark stays.

local A = args({'id', 'int', 'int?'})
local rid, now = A[1], A[2]
local at, server = ledger_time(now, A[3])
if not at then return {'skew', fmt(server)} end
local state, doubt = unpack(redis.call('HMGET', K('r:' .. rid), 'state', 'doubt'))
if not state then return {'notfound'} end
if state == 'held' and not doubt then
  redis.call('HSET', K('r:' .. rid), 'doubt', fmt(now))
  redis.call('SADD', K('doubt'), rid)
end
return {'ok', reservation(rid)}
