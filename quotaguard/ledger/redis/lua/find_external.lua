--! needs: base
-- find_external: [external_id] -> {'none'} | {'ok', reservation}

local rid = redis.call('HGET', P .. 'ext', args({'id'})[1])
if not rid then return {'none'} end
return {'ok', reservation(rid)}
