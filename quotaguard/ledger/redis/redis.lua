-- quotaguard RedisLedger: every ledger operation is one call of this script (EVALSHA).
--
-- KEYS[1] = <prefix>leases; ARGV[1] = operation, ARGV[2] = <prefix> = "{namespace}:".
-- Every key is <prefix>..., so all of them share the namespace's hash tag (one cluster slot).
--   leases        zset  reservation id -> lease expiry (held reservations only)
--   idem          hash  idempotency key -> reservation id (held and committed)
--   ext           hash  external id -> reservation id
--   lapsed        set   ids expired while bound to a job and not committed since
--   budgets       set   budget keys
--   b:<key>       hash  definition (unit, limit, limit_micro, w*, window) + counters
--                       (reserved, outstanding, reported, reported_at, total, ncommits).
--                       A removed budget keeps the hash without 'unit': its commits survive.
--   c:<key>       zset  commits, score = commit time (epoch us), member = "<rid>:<i>:<micro>"
--   m:<key>       hash  UTC month index (year*12 + month-1) -> committed micro-units
--   r:<id>        hash  one reservation
-- Times and amounts are integers (epoch microseconds, micro-units), exact below 2^53 in
-- Lua's doubles. Numbers go back to Redis through fmt(): Lua's own tostring would round.

local P = ARGV[2]
local US_PER_DAY = 86400000000

local function fmt(n) return string.format('%.0f', n + 0) end -- + 0 turns -0 into 0
local function floor(n) return math.floor(n) end

local function hash(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h, flat
end

-- Civil calendar (proleptic Gregorian, UTC), after H. Hinnant's days_from_civil.
local function civil(days)
  local z = days + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end

local function days_from_civil(y, m)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = floor((153 * mp + 2) / 5)
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function month_of(us)
  local y, m = civil(floor(us / US_PER_DAY))
  return y * 12 + m - 1, y, m
end

local function month_bounds(us)
  local _, y, m = month_of(us)
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return days_from_civil(y, m) * US_PER_DAY, days_from_civil(ny, nm) * US_PER_DAY
end

-- [s, e) of a budget's window at now; nil for an open side.
local function bounds(b, now)
  local kind = b.wkind
  if kind == 'fixed' then return tonumber(b.wstart), tonumber(b.wend) end
  if kind == 'calendar_month' then return month_bounds(now) end
  if kind == 'rolling_days' then return now - tonumber(b.wdays) * US_PER_DAY, nil end
  return nil, nil
end

local function scan(key, s, e)
  local lo = s and fmt(s) or '-inf'
  local hi = e and ('(' .. fmt(e)) or '+inf'
  local total = 0
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', P .. 'c:' .. key, lo, hi)) do
    total = total + tonumber(string.match(member, '(%d+)$'))
  end
  return total
end

-- {committed, reserved, report_counts, reported, since_report, outstanding, reported_at}
local function usage(key, b, now)
  local s, e = bounds(b, now)
  local committed
  if b.wkind == 'none' then
    committed = tonumber(b.total or '0')
  elseif b.wkind == 'calendar_month' then
    committed = tonumber(redis.call('HGET', P .. 'm:' .. key, fmt((month_of(now)))) or '0')
  else
    committed = scan(key, s, e)
  end
  local reserved = tonumber(b.reserved or '0')
  local outstanding = tonumber(b.outstanding or '0')
  local at = b.reported_at and tonumber(b.reported_at)
  if at and (s == nil or at >= s) then
    local since = scan(key, (s == nil or at > s) and at or s, e)
    return {committed, reserved, 1, tonumber(b.reported), since, outstanding, at}
  end
  return {committed, reserved, 0, 0, 0, outstanding, 0}
end

local function used(u)
  local here = u[1] + u[2]
  if u[3] == 0 then return here end
  return math.max(here, u[4] + u[5] + u[2])
end

local function budget_record(key)
  local _, flat = hash(P .. 'b:' .. key)
  return flat
end

local function reservation(rid)
  local _, flat = hash(P .. 'r:' .. rid)
  return flat
end

-- holds: "key unit micro key unit micro ..." (budget keys and units contain no spaces)
local function holds_of(text)
  local out, parts = {}, {}
  for token in string.gmatch(text or '', '%S+') do parts[#parts + 1] = token end
  for i = 1, #parts, 3 do out[#out + 1] = {parts[i], parts[i + 1], tonumber(parts[i + 2])} end
  return out
end

local function unhold(rid)
  for _, h in ipairs(holds_of(redis.call('HGET', P .. 'r:' .. rid, 'holds'))) do
    local bkey = P .. 'b:' .. h[1]
    if redis.call('HEXISTS', bkey, 'unit') == 1 then
      redis.call('HINCRBY', bkey, 'reserved', fmt(-h[3]))
      redis.call('HINCRBY', bkey, 'outstanding', -1)
    end
  end
  redis.call('ZREM', KEYS[1], rid)
end

local function forget_idem(rid)
  local idem = redis.call('HGET', P .. 'r:' .. rid, 'idem')
  if idem and idem ~= '' and redis.call('HGET', P .. 'idem', idem) == rid then
    redis.call('HDEL', P .. 'idem', idem)
  end
  redis.call('HSET', P .. 'r:' .. rid, 'idem', '') -- the record no longer claims the key
end

local function finish(rid, state, now)
  unhold(rid)
  redis.call('HSET', P .. 'r:' .. rid, 'state', state, 'ended', fmt(now))
  -- An expired hold of work that was sent (bound) keeps its key: a retry must not resend it.
  local ext = redis.call('HGET', P .. 'r:' .. rid, 'ext')
  if state ~= 'expired' or not ext or ext == '' then
    forget_idem(rid)
  else
    redis.call('SADD', P .. 'lapsed', rid) -- the work ran: its cost is still owed
  end
end

local function expire_due(now)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
  for _, rid in ipairs(due) do finish(rid, 'expired', now) end
  return #due
end

local function add_commit(key, at, micro, member)
  local bkey = P .. 'b:' .. key
  if redis.call('EXISTS', bkey) == 0 then return end -- never a budget here: nothing to count
  redis.call('HINCRBY', bkey, 'ncommits', 1)
  if micro > 0 then
    redis.call('HINCRBY', bkey, 'total', fmt(micro))
    redis.call('HINCRBY', P .. 'm:' .. key, fmt((month_of(at))), fmt(micro))
    redis.call('ZADD', P .. 'c:' .. key, fmt(at), member .. ':' .. fmt(micro))
  end
end

local ops = {}

-- The budget fields reserve reads: one HMGET per budget instead of HGET + HGETALL + HGET.
local RESERVE_FIELDS = {'unit', 'limit_micro', 'wkind', 'wstart', 'wend', 'wdays', 'reserved',
  'outstanding', 'total', 'reported', 'reported_at'}

local function reserve_fields(key)
  local values = redis.call('HMGET', P .. 'b:' .. key, unpack(RESERVE_FIELDS))
  local b = {}
  for i, name in ipairs(RESERVE_FIELDS) do
    if values[i] then b[name] = values[i] end -- a missing field comes back as false
  end
  return b
end

-- now, lease_until, rid, idem, fingerprint (only with idem), charges_json,
-- "key unit ...", "key micro ..." (budget keys and units contain no spaces)
function ops.reserve()
  local now, lease_until = tonumber(ARGV[3]), ARGV[4]
  local rid, idem, fp, charges = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  local bad, budgets = false, {}
  for key, want in string.gmatch(ARGV[9], '(%S+) (%S+)') do
    local b = budgets[key] or reserve_fields(key)
    budgets[key] = b
    if b.unit ~= want then bad = true end
  end
  local keys, amounts, n = {}, {}, 0
  for key, micro in string.gmatch(ARGV[10], '(%S+) (%S+)') do
    n = n + 1
    keys[n], amounts[n] = key, tonumber(micro)
  end
  if bad then
    local out = {'check'}
    for i = 1, n do out[#out + 1] = budget_record(keys[i]) end
    return out
  end
  -- A retry of this very call (reply lost, client retried): the same reservation.
  if redis.call('EXISTS', P .. 'r:' .. rid) == 1 then return {'new'} end
  -- Before the key lookup: a lapsed lease frees its idempotency key. An expiry changes the
  -- budgets' counters, so read them again then (rare: leases are renewed or settled).
  if expire_due(now) > 0 then
    for key in pairs(budgets) do budgets[key] = reserve_fields(key) end
  end
  if idem ~= '' then
    local existing = redis.call('HGET', P .. 'idem', idem)
    if existing then
      local tag = redis.call('HGET', P .. 'r:' .. existing, 'fp') == fp and 'replay' or 'conflict'
      return {tag, reservation(existing)}
    end
  end
  local admit, usages = true, {}
  for i = 1, n do
    local b = budgets[keys[i]]
    local u = usage(keys[i], b, now)
    usages[i] = u
    if b.wkind == 'fixed' and not (tonumber(b.wstart) <= now and now < tonumber(b.wend)) then
      admit = false
    elseif amounts[i] > tonumber(b.limit_micro) - used(u) then
      admit = false
    end
  end
  if not admit then
    local out = {'reject'}
    for i = 1, n do
      out[#out + 1] = budget_record(keys[i])
      out[#out + 1] = usages[i]
    end
    return out
  end
  local holds = {}
  for i = 1, n do
    local b = budgets[keys[i]]
    -- The counters were read above in this same script: one HSET, not two HINCRBYs.
    redis.call('HSET', P .. 'b:' .. keys[i],
      'reserved', fmt(tonumber(b.reserved or '0') + amounts[i]),
      'outstanding', fmt(tonumber(b.outstanding or '0') + 1))
    holds[i] = keys[i] .. ' ' .. b.unit .. ' ' .. fmt(amounts[i])
  end
  local rkey = P .. 'r:' .. rid
  if idem == '' then -- no key, no fingerprint: nothing will ever compare it
    redis.call('HSET', rkey, 'id', rid, 'state', 'held', 'created', fmt(now),
      'lease', lease_until, 'charges', charges, 'holds', table.concat(holds, ' '))
  else
    redis.call('HSET', rkey, 'id', rid, 'state', 'held', 'created', fmt(now),
      'lease', lease_until, 'idem', idem, 'fp', fp, 'charges', charges,
      'holds', table.concat(holds, ' '))
    redis.call('HSET', P .. 'idem', idem, rid)
  end
  redis.call('ZADD', KEYS[1], lease_until, rid)
  return {'new'} -- the caller has every field already: a short reply is a faster one
end

-- rid, now, has_actual, actual_json, n, (key, unit, micro)*
function ops.commit()
  local rid, now = ARGV[3], tonumber(ARGV[4])
  local has_actual, n = ARGV[5] == '1', tonumber(ARGV[7])
  local r = hash(P .. 'r:' .. rid)
  if not r.id then return {'notfound'} end
  local held, units = holds_of(r.holds), {}
  for _, h in ipairs(held) do units[h[1]] = h[2] end
  if has_actual then
    for i = 1, n do
      local a = 8 + 3 * (i - 1)
      if units[ARGV[a]] ~= ARGV[a + 1] then return {'bad', reservation(rid)} end
    end
  end
  if r.state == 'committed' or r.state == 'released' then return {'ok', reservation(rid)} end
  if r.state == 'held' then unhold(rid) end
  if has_actual then
    for i = 1, n do
      local a = 8 + 3 * (i - 1)
      add_commit(ARGV[a], now, tonumber(ARGV[a + 2]), rid .. ':' .. i)
    end
  else
    for i, h in ipairs(held) do add_commit(h[1], now, h[3], rid .. ':' .. i) end
  end
  redis.call('HSET', P .. 'r:' .. rid, 'state', 'committed', 'ended', fmt(now),
    'actual', has_actual and ARGV[6] or r.charges)
  if r.state == 'expired' then redis.call('SREM', P .. 'lapsed', rid) end
  return {'ok', reservation(rid)}
end

-- rid, now
function ops.release()
  local rid, now = ARGV[3], tonumber(ARGV[4])
  local state = redis.call('HGET', P .. 'r:' .. rid, 'state')
  if not state then return {'notfound'} end
  if state == 'held' then finish(rid, 'released', now) end
  return {'ok', reservation(rid)}
end

-- rid, now: the caller of reserve(rid) was cancelled; its script may have run or may still
-- arrive. Release the hold, or leave a released record: reserve then sees a retry, holds
-- nothing. Nobody else knows rid, so the record is never read back.
function ops.cancel()
  local rid, now = ARGV[3], tonumber(ARGV[4])
  local state = redis.call('HGET', P .. 'r:' .. rid, 'state')
  if state == 'held' then
    finish(rid, 'released', now)
  elseif not state then
    redis.call('HSET', P .. 'r:' .. rid, 'id', rid, 'state', 'released', 'created', fmt(now),
      'lease', fmt(now), 'ended', fmt(now), 'charges', '[]', 'holds', '')
    -- Only a command already in flight can arrive late: an hour outlives any of them.
    redis.call('PEXPIRE', P .. 'r:' .. rid, 3600000)
  end
  return {'ok'}
end

-- rid, now, lease_until
function ops.renew()
  local rid, now = ARGV[3], tonumber(ARGV[4])
  if redis.call('EXISTS', P .. 'r:' .. rid) == 0 then return {'notfound'} end
  expire_due(now)
  if redis.call('HGET', P .. 'r:' .. rid, 'state') == 'held' then
    redis.call('HSET', P .. 'r:' .. rid, 'lease', ARGV[5])
    redis.call('ZADD', KEYS[1], ARGV[5], rid)
  end
  return {'ok', reservation(rid)}
end

-- now
function ops.expire()
  return {'ok', expire_due(tonumber(ARGV[3]))}
end

-- rid, external_id
function ops.bind()
  local rid, ext = ARGV[3], ARGV[4]
  local old = redis.call('HGET', P .. 'r:' .. rid, 'ext')
  if not redis.call('HGET', P .. 'r:' .. rid, 'id') then return {'notfound'} end
  if old and old ~= '' and redis.call('HGET', P .. 'ext', old) == rid then
    redis.call('HDEL', P .. 'ext', old) -- a rebind replaces the old id
  end
  redis.call('HSET', P .. 'r:' .. rid, 'ext', ext)
  redis.call('HSET', P .. 'ext', ext, rid)
  if redis.call('HGET', P .. 'r:' .. rid, 'state') == 'expired' then
    redis.call('SADD', P .. 'lapsed', rid) -- bound after its lease lapsed: still owed
  end
  return {'ok', reservation(rid)}
end

-- rid
function ops.get()
  if redis.call('EXISTS', P .. 'r:' .. ARGV[3]) == 0 then return {'notfound'} end
  return {'ok', reservation(ARGV[3])}
end

-- external_id
function ops.find_external()
  local rid = redis.call('HGET', P .. 'ext', ARGV[3])
  if not rid then return {'none'} end
  return {'ok', reservation(rid)}
end

function ops.lapsed()
  local out = {'ok'}
  for _, rid in ipairs(redis.call('SMEMBERS', P .. 'lapsed')) do out[#out + 1] = reservation(rid) end
  return out
end

function ops.outstanding()
  local out = {'ok'}
  for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do out[#out + 1] = reservation(rid) end
  return out
end

-- key, micro, at
function ops.record_report()
  local bkey = P .. 'b:' .. ARGV[3]
  if redis.call('HEXISTS', bkey, 'unit') == 0 then return {'unknown'} end
  local prev = redis.call('HGET', bkey, 'reported_at')
  -- Set-if-newer: N workers seeding the same report at once leave one value, never a sum.
  if prev and tonumber(ARGV[5]) < tonumber(prev) then return {'ok', 0} end
  redis.call('HSET', bkey, 'reported', ARGV[4], 'reported_at', ARGV[5])
  return {'ok', 1}
end

-- key, now
function ops.state()
  local now = tonumber(ARGV[4])
  expire_due(now)
  local b, flat = hash(P .. 'b:' .. ARGV[3])
  if not b.unit then return {'unknown'} end
  return {'ok', flat, usage(ARGV[3], b, now)}
end

-- key, unit, limit, limit_micro, window_json, wkind, wstart, wend, wdays
function ops.put_budget()
  local key = ARGV[3]
  local bkey = P .. 'b:' .. key
  local b = hash(bkey)
  if b.unit and b.unit ~= ARGV[4]
      and (tonumber(b.reserved or '0') ~= 0 or tonumber(b.ncommits or '0') > 0) then
    return {'unit', b.unit}
  end
  if not b.unit then
    -- New, or back after removal: fresh counters, but earlier commits still count.
    redis.call('HDEL', bkey, 'reported', 'reported_at')
    redis.call('HSET', bkey, 'reserved', 0, 'outstanding', 0)
  end
  redis.call('HSET', bkey, 'key', key, 'unit', ARGV[4], 'limit', ARGV[5], 'limit_micro', ARGV[6],
    'window', ARGV[7], 'wkind', ARGV[8], 'wstart', ARGV[9], 'wend', ARGV[10], 'wdays', ARGV[11])
  redis.call('SADD', P .. 'budgets', key)
  return {'ok'}
end

-- key
function ops.remove_budget()
  local key = ARGV[3]
  local bkey = P .. 'b:' .. key
  local b = hash(bkey)
  if not b.unit then return {'unknown'} end
  if tonumber(b.outstanding or '0') > 0 then return {'outstanding'} end
  -- Keep the commits (and the hash, without 'unit'): spend is never forgotten.
  redis.call('HDEL', bkey, 'unit', 'limit', 'limit_micro', 'window', 'wkind', 'wstart', 'wend',
    'wdays', 'reported', 'reported_at')
  redis.call('HSET', bkey, 'key', key)
  redis.call('SREM', P .. 'budgets', key)
  return {'ok'}
end

-- key
function ops.get_budget()
  if redis.call('HEXISTS', P .. 'b:' .. ARGV[3], 'unit') == 0 then return {'unknown'} end
  return {'ok', budget_record(ARGV[3])}
end

function ops.budgets()
  local out = {'ok'}
  for _, key in ipairs(redis.call('SMEMBERS', P .. 'budgets')) do
    out[#out + 1] = budget_record(key)
  end
  return out
end

-- Test hook: the formula alone, on counters given as arguments (no keys touched).
-- committed, reserved, counts, reported, since, limit_micro
function ops.formula()
  local u = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
    tonumber(ARGV[7])}
  local total = used(u)
  return {'ok', fmt(total), fmt(tonumber(ARGV[8]) - total)}
end

local op = ops[ARGV[1]]
if not op then return redis.error_reply('quotaguard: unknown ledger operation') end
return op()
