--! needs: base
-- in_doubt: [] -> {'ok', reservation...}

args({})
local out = {'ok'}
for _, rid in ipairs(redis.call('SMEMBERS', P .. 'doubt')) do out[#out + 1] = reservation(rid) end
return out
