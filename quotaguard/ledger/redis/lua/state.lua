--! needs: base holds usage
-- state: [key, now, clock|null, month]
-- -> {'unknown'} | {'skew', server_time} | {'ok', budget, usage, in_doubt}

local A = args({'key', 'int', 'int?', 'list'})
local key = A[1]
local at, server = ledger_time(A[2], A[3])
if not at then return {'skew', fmt(server)} end
local c = clock(A[2], A[4])
local bkey = K('b:' .. key)
if redis.call('HEXISTS', bkey, 'unit') == 0 then return {'unknown'} end
-- The read phase: what expiring due leases touches, and the records of holds in doubt.
want_due(at)
for _, rid in ipairs(redis.call('SMEMBERS', K('doubt'))) do want('r:' .. rid) end
local need = ask()
if need then return need end
expire_due(at)
local b, flat = hash(bkey)
local doubt = 0 -- the outstanding holds on this budget whose work may have been sent
for _, rid in ipairs(redis.call('SMEMBERS', K('doubt'))) do
  for _, h in ipairs(holds_of(redis.call('HGET', K('r:' .. rid), 'holds'))) do
    if h[1] == key then doubt = doubt + 1 end
  end
end
return {'ok', flat, usage(key, b, c), doubt}
