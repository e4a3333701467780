--! needs: base holds
-- release: rid, now -> {'notfound'} | {'ok', reservation}

local rid, now = ARGV[3], tonumber(ARGV[4])
local state = redis.call('HGET', P .. 'r:' .. rid, 'state')
if not state then return {'notfound'} end
if state == 'held' then finish(rid, 'released', now) end
return {'ok', reservation(rid)}
