--! needs: base holds usage
-- state: key, now, month -> {'unknown'} | {'ok', budget, usage}

local c = clock(ARGV[4], ARGV[5])
local bkey = P .. 'b:' .. ARGV[3]
if redis.call('HEXISTS', bkey, 'unit') == 0 then return {'unknown'} end
expire_due(c.now)
local b, flat = hash(bkey)
return {'ok', flat, usage(ARGV[3], b, c)}
