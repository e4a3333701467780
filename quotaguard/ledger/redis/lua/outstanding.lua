--! needs: base
-- outstanding: [] -> {'ok', reservation...} (by lease expiry)

args({})
local out = {'ok'}
local rids = redis.call('ZRANGE', K('leases'), 0, -1)
for _, rid in ipairs(rids) do want('r:' .. rid) end
local need = ask()
if need then return need end
for _, rid in ipairs(rids) do out[#out + 1] = reservation(rid) end
return out
