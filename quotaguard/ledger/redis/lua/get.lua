--! needs: base
-- get: [rid] -> {'notfound'} | {'ok', reservation}

local rid = args({'id'})[1]
if redis.call('EXISTS', K('r:' .. rid)) == 0 then return {'notfound'} end
return {'ok', reservation(rid)}
