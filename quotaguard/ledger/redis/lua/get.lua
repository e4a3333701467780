--! needs: base
-- get: rid -> {'notfound'} | {'ok', reservation}

if redis.call('EXISTS', P .. 'r:' .. ARGV[3]) == 0 then return {'notfound'} end
return {'ok', reservation(ARGV[3])}
