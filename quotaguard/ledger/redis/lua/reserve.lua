--! needs: base holds usage
-- reserve: [now, clock|null, month, lease (us), rid, idem, fingerprint (with idem only),
--   charges_json, [[key, unit, micro], ...] (one per budget and unit)]
-- -> {'new', lease_until} | {'skew', server_time} | {'check', budget...}
--    | {'replay'|'conflict', reservation} | {'reject', (budget, usage)...}

local A = args({'int', 'int?', 'list', 'int', 'id', 'str', 'str', 'str', 'list'})
local wanted = items(A[9], {'key', 'key', 'int'}, 'holds')
if #wanted == 0 then refuse('no holds') end
local now = A[1]
local at, server = ledger_time(now, A[2])
if not at then return {'skew', fmt(server)} end
local c = clock(now, A[3])
local lease_until = fmt(at + A[4])
local rid, idem, fp, charges = A[5], A[6], A[7], A[8]

-- The budget fields reserve reads: one HMGET per budget instead of HGET + HGETALL + HGET.
local FIELDS = {'unit', 'limit_micro', 'wkind', 'wstart', 'wend', 'wdays', 'reserved',
  'outstanding', 'total', 'reported', 'reported_at', 'covers', 'inside'}

local function fields(key)
  local values = redis.call('HMGET', K('b:' .. key), unpack(FIELDS))
  local b = {}
  for i, name in ipairs(FIELDS) do
    if values[i] then b[name] = values[i] end -- a missing field comes back as false
  end
  return b
end

local bad, budgets, keys, amounts, n = false, {}, {}, {}, 0
for _, h in ipairs(wanted) do
  local key = h[1]
  local b = budgets[key] or fields(key)
  if b.unit ~= h[2] then bad = true end
  if not budgets[key] then
    budgets[key] = b
    n = n + 1
    keys[n], amounts[n] = key, h[3]
  else
    for i = 1, n do if keys[i] == key then amounts[i] = amounts[i] + h[3] end end
  end
end
if bad then -- Python words the error from these records
  local out = {'check'}
  for i = 1, n do out[#out + 1] = budget_record(keys[i]) end
  return out
end
-- A retry of this very call (reply lost, client retried): the same reservation.
if redis.call('EXISTS', K('r:' .. rid)) == 1 then
  return {'new', redis.call('HGET', K('r:' .. rid), 'lease')}
end
-- The read phase: what expiring due leases touches, and the record a key may replay.
want_due(at)
local claimed = idem ~= '' and redis.call('HGET', K('idem'), idem)
if claimed then want('r:' .. claimed) end
local need = ask()
if need then return need end
-- Before the key lookup: a lapsed lease frees its idempotency key. An expiry changes the
-- budgets' counters, so read them again then (rare: leases are renewed or settled).
if expire_due(at) > 0 then
  for key in pairs(budgets) do budgets[key] = fields(key) end
end
if idem ~= '' then
  local existing = redis.call('HGET', K('idem'), idem)
  if existing then
    local tag = redis.call('HGET', K('r:' .. existing), 'fp') == fp and 'replay' or 'conflict'
    return {tag, reservation(existing)}
  end
end
local admit, usages = true, {}
for i = 1, n do
  local b = budgets[keys[i]]
  local u = usage(keys[i], b, c)
  usages[i] = u
  if b.wkind == 'fixed' and not (tonumber(b.wstart) <= now and now < tonumber(b.wend)) then
    admit = false
  elseif amounts[i] > tonumber(b.limit_micro) - used(u) then
    admit = false
  end
end
if not admit then -- Python words the violations from these counters
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
  redis.call('HSET', K('b:' .. keys[i]),
    'reserved', fmt(tonumber(b.reserved or '0') + amounts[i]),
    'outstanding', fmt(tonumber(b.outstanding or '0') + 1))
  holds[i] = {keys[i], b.unit, fmt(amounts[i])}
end
local rkey = K('r:' .. rid)
if idem == '' then -- no key, no fingerprint: nothing will ever compare it
  redis.call('HSET', rkey, 'id', rid, 'state', 'held', 'created', fmt(now),
    'lease', lease_until, 'charges', charges, 'holds', cjson.encode(holds))
else
  redis.call('HSET', rkey, 'id', rid, 'state', 'held', 'created', fmt(now),
    'lease', lease_until, 'idem', idem, 'fp', fp, 'charges', charges,
    'holds', cjson.encode(holds))
  redis.call('HSET', K('idem'), idem, rid)
end
redis.call('ZADD', K('leases'), lease_until, rid)
return {'new', lease_until} -- the caller has every other field already
