--! needs: base holds
-- release: [rid, now, clock|null] -> {'notfound'} | {'skew', server_time} | {'ok', reservation}

local A = args({'id', 'int', 'int?'})
local rid, now = A[1], A[2]
local at, server = ledger_time(now, A[3])
if not at then return {'skew', fmt(server)} end
local state = redis.call('HGET', K('r:' .. rid), 'state')
if not state then return {'notfound'} end
if state == 'held' then want_end(rid) end
local need = ask()
if need then return need end
if state == 'held' then finish(rid, 'released', now) end
return {'ok', reservation(rid)}
