--! needs: base holds
-- cancel: [rid, now] -> {'ok'}
-- The caller of reserve(rid) was cancelled; its script may have run or may still arrive.
-- Release the hold, or leave a released record: reserve then sees a retry, holds nothing.
-- Nobody else knows rid, so the record is never read back. No clock check: an undo always runs.

local A = args({'id', 'int'})
local rid, now = A[1], A[2]
local state = redis.call('HGET', K('r:' .. rid), 'state')
if state == 'held' then want_end(rid) end
local need = ask()
if need then return need end
if state == 'held' then
  finish(rid, 'released', now)
elseif not state then
  redis.call('HSET', K('r:' .. rid), 'id', rid, 'state', 'released', 'created', fmt(now),
    'lease', fmt(now), 'ended', fmt(now), 'charges', '[]', 'holds', '')
  -- Only a command already in flight can arrive late: an hour outlives any of them.
  redis.call('PEXPIRE', K('r:' .. rid), 3600000)
end
return {'ok'}
