--! needs: base
-- list_ended: [rids, done (0|1)] -> {'ok', listed, all listed before (0|1)}
-- Records that ended before 'ended' existed are put in it (trim finds them there); done
-- marks the namespace's records all listed. Owed ones (lapsed) stay out: trim keeps them.
-- Python finds the ids by SCAN (ledger.py: _list_ended) and declares their r:<id> keys.

local A = args({'list', 'int'})
local rids = A[1]
local listed = 0
for _, rid in ipairs(rids) do
  if type(rid) ~= 'string' then refuse('rid') end
  local state, ended = unpack(redis.call('HMGET', K('r:' .. rid), 'state', 'ended'))
  if state and state ~= 'held' and ended and ended ~= ''
      and redis.call('SISMEMBER', K('lapsed'), rid) == 0 then
    listed = listed + redis.call('ZADD', K('ended'), 'NX', ended, rid)
  end
end
local before = redis.call('EXISTS', K('ended_listed'))
if A[2] == 1 then redis.call('SET', K('ended_listed'), '1') end
return {'ok', listed, before}
