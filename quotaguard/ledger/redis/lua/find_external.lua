--! needs: base
-- find_external: external_id -> {'none'} | {'ok', reservation}

local rid = redis.call('HGET', P .. 'ext', ARGV[3])
if not rid then return {'none'} end
return {'ok', reservation(rid)}
