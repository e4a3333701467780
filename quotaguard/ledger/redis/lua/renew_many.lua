--! needs: base holds
-- renew_many: [[rid, ...], now, clock|null, lease (us)]
-- -> {'skew', server_time} | {'ok', reservation...} (the renewed ones, in the order given)

local A = args({'list', 'int', 'int?', 'int'})
local rids = A[1]
for i, rid in ipairs(rids) do
  if not KINDS.id(rid) then refuse('id ' .. i) end
end
local at, server = ledger_time(A[2], A[3])
if not at then return {'skew', fmt(server)} end
for _, rid in ipairs(rids) do want('r:' .. rid) end
want_due(at)
local need = ask()
if need then return need end
expire_due(at) -- a lapsed lease is not renewed
local until_ = fmt(at + A[4])
local out = {'ok'}
for _, rid in ipairs(rids) do
  if redis.call('HGET', K('r:' .. rid), 'state') == 'held' then
    redis.call('HSET', K('r:' .. rid), 'lease', until_)
    redis.call('ZADD', K('leases'), until_, rid)
    out[#out + 1] = reservation(rid)
  end
end
return out
