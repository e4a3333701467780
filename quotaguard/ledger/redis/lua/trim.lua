--! needs: base usage
-- trim: [now, clock|null, cut, month, cut_month, limit]
-- -> {'skew', server_time} | {'ok', commits, reservations, more (0|1)}
-- Forget at most limit records dated before cut that no window can count (the rule of
-- quotaguard/ledger/retention.py): a budget's commits before the earlier of cut and its
-- window's start (unwindowed: and its report), which 'total' holds already; month sums
-- before cut's month (cut_month: its index); ended reservations not owed, with their key.

local A = args({'int', 'int?', 'int', 'list', 'int', 'int'})
-- A caller's now far from the ledger's time would date windows wrongly: refused first.
local at, server = ledger_time(A[1], A[2])
if not at then return {'skew', fmt(server)} end
local c = clock(A[1], A[4])
local cut, cut_month, left = A[3], A[5], A[6]
local commits, gone = 0, 0
for _, key in ipairs(redis.call('SMEMBERS', P .. 'budgets')) do
  if left <= 0 then break end
  local b = hash(P .. 'b:' .. key)
  local start = bounds(b, c)
  local upto = math.min(cut, start or (b.reported_at and tonumber(b.reported_at)) or cut)
  for _, index in ipairs({'c:', 'f:'}) do
    local zkey = P .. index .. key
    local n = math.min(redis.call('ZCOUNT', zkey, '-inf', '(' .. fmt(upto)), math.max(left, 0))
    if n > 0 then redis.call('ZREMRANGEBYRANK', zkey, 0, n - 1) end
    if index == 'c:' then commits = commits + n end
    left = left - n
  end
  local mkey = P .. 'm:' .. key
  for _, month in ipairs(redis.call('HKEYS', mkey)) do
    if tonumber(month) < cut_month then redis.call('HDEL', mkey, month) end
  end
end
if left > 0 then
  local ended = redis.call('ZRANGEBYSCORE', P .. 'ended', '-inf', '(' .. fmt(cut), 'LIMIT', 0, left)
  for _, rid in ipairs(ended) do
    local r = hash(P .. 'r:' .. rid)
    -- Bound after it expired unsent: owed now (lapsed); its commit lists it here again.
    if r.state and r.state ~= 'held' and redis.call('SISMEMBER', P .. 'lapsed', rid) == 0 then
      if r.idem and r.idem ~= '' and redis.call('HGET', P .. 'idem', r.idem) == rid then
        redis.call('HDEL', P .. 'idem', r.idem)
      end
      if r.ext and r.ext ~= '' and redis.call('HGET', P .. 'ext', r.ext) == rid then
        redis.call('HDEL', P .. 'ext', r.ext)
      end
      redis.call('DEL', P .. 'r:' .. rid)
      gone = gone + 1
    end
    redis.call('ZREM', P .. 'ended', rid)
  end
  left = left - #ended
end
return {'ok', commits, gone, left <= 0 and 1 or 0}
