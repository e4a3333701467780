--! needs: base
-- find_external: [external_id] -> {'none'} | {'ok', reservation}

local rid = redis.call('HGET', K('ext'), args({'id'})[1])
if not rid then return {'none'} end
want('r:' .. rid)
local need = ask()
if need then return need end
return {'ok', reservation(rid)}
