--! needs: base holds usage
-- state: [key, now, clock|null, month]
-- -> {'unknown'} | {'skew', server_time} | {'ok', budget, usage, in_doubt}

local A = args({'key', 'int', 'int?', 'list'})
local key = A[1]
local at, server = ledger_time(A[2], A[3])
if not at then return {'skew', fmt(server)} end
local c = clock(A[2], A[4])
local bkey = P .. 'b:' .. key
if redis.call('HEXISTS', bkey, 'unit') == 0 then return {'unknown'} end
expire_due(at)
local b, flat = hash(bkey)
local doubt = 0 -- the outstanding holds on this budget whose work may have been sent
for _, rid in ipairs(redis.call('SMEMBERS', P .. 'doubt')) do
  for _, h in ipairs(holds_of(redis.call('HGET', P .. 'r:' .. rid, 'holds'))) do
    if h[1] == key then doubt = doubt + 1 end
  end
end
return {'ok', flat, usage(key, b, c), doubt}
