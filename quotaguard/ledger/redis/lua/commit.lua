--! needs: base holds
-- commit: [rid, now, clock|null, month, has_actual (0|1), actual_json,
--   [[key, unit, micro], ...] (the actual charges)]
-- -> {'notfound'} | {'skew', server_time} | {'bad', reservation} | {'ok', reservation}

local A = args({'id', 'int', 'int?', 'list', 'int', 'str', 'list'})
local rid, now = A[1], A[2]
local actual = items(A[7], {'key', 'key', 'int'}, 'actual')
items({A[4]}, {'int', 'int', 'int'}, 'month')
local month = fmt(A[4][1]) -- the month's index: where its sum goes
local has_actual = A[5] == 1
local at, server = ledger_time(now, A[3])
if not at then return {'skew', fmt(server)} end

local function add_commit(key, at, floor, micro, member)
  local bkey = K('b:' .. key)
  if redis.call('EXISTS', bkey) == 0 then return end -- never a budget here: nothing to count
  redis.call('HINCRBY', bkey, 'ncommits', 1)
  if micro > 0 then
    redis.call('HINCRBY', bkey, 'total', fmt(micro))
    redis.call('HINCRBY', K('m:' .. key), month, fmt(micro))
    redis.call('ZADD', K('c:' .. key), fmt(at), member .. ':' .. fmt(micro))
    redis.call('ZADD', K('f:' .. key), fmt(floor), member .. ':' .. fmt(micro))
  end
end

local r = hash(K('r:' .. rid))
if not r.id then return {'notfound'} end
local held, units = holds_of(r.holds), {}
for _, h in ipairs(held) do units[h[1]] = h[2] end
if has_actual then
  for _, a in ipairs(actual) do
    if units[a[1]] ~= a[2] then return {'bad', reservation(rid)} end
  end
end
-- Ended once: committed or released stand; expired may still be committed (the work ran).
if r.state == 'committed' or r.state == 'released' then return {'ok', reservation(rid)} end
-- The read phase: what un-holding and adding the commits touch.
if r.state == 'held' then want_end(rid) end
for _, h in ipairs(has_actual and actual or held) do
  for _, kind in ipairs({'b:', 'm:', 'c:', 'f:'}) do want(kind .. h[1]) end
end
local need = ask()
if need then return need end
if r.state == 'held' then unhold(rid) end
local floor = r.sent and tonumber(r.sent) or now -- when its work was sent, else now
if has_actual then
  for i, a in ipairs(actual) do add_commit(a[1], now, floor, a[3], rid .. ':' .. i) end
else
  for i, h in ipairs(held) do add_commit(h[1], now, floor, h[3], rid .. ':' .. i) end
end
redis.call('HSET', K('r:' .. rid), 'state', 'committed', 'ended', fmt(now),
  'actual', has_actual and A[6] or r.charges)
if r.state == 'expired' then redis.call('SREM', K('lapsed'), rid) end
redis.call('ZADD', K('ended'), fmt(now), rid)
return {'ok', reservation(rid)}
