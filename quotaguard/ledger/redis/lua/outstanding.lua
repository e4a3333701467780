--! needs: base
-- outstanding: [] -> {'ok', reservation...} (by lease expiry)

args({})
local out = {'ok'}
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do out[#out + 1] = reservation(rid) end
return out
