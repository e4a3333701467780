--! needs: base
-- record_report: key, micro, at -> {'unknown'} | {'ok', 0|1}

local bkey = P .. 'b:' .. ARGV[3]
if redis.call('HEXISTS', bkey, 'unit') == 0 then return {'unknown'} end
local prev = redis.call('HGET', bkey, 'reported_at')
-- Set-if-newer: N workers seeding the same report at once leave one value, never a sum.
if prev and tonumber(ARGV[5]) < tonumber(prev) then return {'ok', 0} end
redis.call('HSET', bkey, 'reported', ARGV[4], 'reported_at', ARGV[5])
return {'ok', 1}
