--! needs: base
-- lapsed: [] -> {'ok', reservation...}

args({})
local out = {'ok'}
for _, rid in ipairs(redis.call('SMEMBERS', P .. 'lapsed')) do out[#out + 1] = reservation(rid) end
return out
