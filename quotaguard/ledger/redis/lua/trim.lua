--! needs: base usage
-- trim: [now, clock|null, cut, month, cut_month, limit]
-- -> {'skew', server_time} | {'ok', commits, reservations, more (0|1)} | {'need', key...}
-- Forget at most limit records dated before cut that no window can count (the rule of
-- quotaguard/ledger/retention.py): a budget's commits before the earlier of cut and its
-- window's start (unwindowed: and its report), which 'total' holds already; month sums
-- before cut's month (cut_month: its index); ended reservations not owed, with their key.
-- The budgets and the ended records are found by reading: plan() walks them without
-- writing, want()ing their keys, and the writes start only once all are declared.

local A = args({'int', 'int?', 'int', 'list', 'int', 'int'})
-- A caller's now far from the ledger's time would date windows wrongly: refused first.
local at, server = ledger_time(A[1], A[2])
if not at then return {'skew', fmt(server)} end
local c = clock(A[1], A[4])
local cut, cut_month, limit = A[3], A[5], A[6]

-- What trimming would do, read only: per budget the commits to drop from its c: and f:
-- (in SMEMBERS order, until limit records), then the ended ids (the rest of the limit).
-- A budget whose keys are not declared yet counts as dropping nothing, so the next ones
-- are asked for too: the round that declares them all plans within the limit.
local function plan()
  local cuts, left = {}, limit
  for _, key in ipairs(redis.call('SMEMBERS', K('budgets'))) do
    if left <= 0 then break end
    local ready = want('b:' .. key)
    ready = want('c:' .. key) and ready
    ready = want('f:' .. key) and ready
    ready = want('m:' .. key) and ready
    if ready then
      local b = hash(K('b:' .. key))
      local start = bounds(b, c)
      local upto = math.min(cut, start or (b.reported_at and tonumber(b.reported_at)) or cut)
      local n = {}
      for _, index in ipairs({'c:', 'f:'}) do
        n[index] = math.min(redis.call('ZCOUNT', K(index .. key), '-inf', '(' .. fmt(upto)), left)
        left = left - n[index]
      end
      cuts[#cuts + 1] = {key, n['c:'], n['f:']}
    end
  end
  local ended = {}
  if left > 0 then
    ended = redis.call('ZRANGEBYSCORE', K('ended'), '-inf', '(' .. fmt(cut), 'LIMIT', 0, left)
    for _, rid in ipairs(ended) do want('r:' .. rid) end
  end
  return cuts, ended, left - #ended
end

local cuts, ended, left = plan()
local need = ask()
if need then return need end

local commits, gone = 0, 0
for _, cutting in ipairs(cuts) do
  local key, nc, nf = unpack(cutting)
  if nc > 0 then redis.call('ZREMRANGEBYRANK', K('c:' .. key), 0, nc - 1) end
  if nf > 0 then redis.call('ZREMRANGEBYRANK', K('f:' .. key), 0, nf - 1) end
  commits = commits + nc
  local mkey = K('m:' .. key)
  for _, month in ipairs(redis.call('HKEYS', mkey)) do
    if tonumber(month) < cut_month then redis.call('HDEL', mkey, month) end
  end
end
for _, rid in ipairs(ended) do
  local r = hash(K('r:' .. rid))
  -- Bound after it expired unsent: owed now (lapsed); its commit lists it here again.
  if r.state and r.state ~= 'held' and redis.call('SISMEMBER', K('lapsed'), rid) == 0 then
    if r.idem and r.idem ~= '' and redis.call('HGET', K('idem'), r.idem) == rid then
      redis.call('HDEL', K('idem'), r.idem)
    end
    if r.ext and r.ext ~= '' and redis.call('HGET', K('ext'), r.ext) == rid then
      redis.call('HDEL', K('ext'), r.ext)
    end
    redis.call('DEL', K('r:' .. rid))
    gone = gone + 1
  end
  redis.call('ZREM', K('ended'), rid)
end
return {'ok', commits, gone, left <= 0 and 1 or 0}
