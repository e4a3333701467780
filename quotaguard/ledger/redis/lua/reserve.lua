--! needs: base holds usage
-- reserve: now, month, lease_until, rid, idem, fingerprint (only with idem), charges_json,
-- "key unit ...", "key micro ..." (budget keys and units contain no spaces)
-- -> {'new'} | {'check', budget...} | {'replay'|'conflict', reservation}
--    | {'reject', (budget, usage)...}

-- The budget fields reserve reads: one HMGET per budget instead of HGET + HGETALL + HGET.
local FIELDS = {'unit', 'limit_micro', 'wkind', 'wstart', 'wend', 'wdays', 'reserved',
  'outstanding', 'total', 'reported', 'reported_at'}

local function fields(key)
  local values = redis.call('HMGET', P .. 'b:' .. key, unpack(FIELDS))
  local b = {}
  for i, name in ipairs(FIELDS) do
    if values[i] then b[name] = values[i] end -- a missing field comes back as false
  end
  return b
end

local c = clock(ARGV[3], ARGV[4])
local now, lease_until = c.now, ARGV[5]
local rid, idem, fp, charges = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local bad, budgets = false, {}
for key, want in string.gmatch(ARGV[10], '(%S+) (%S+)') do
  local b = budgets[key] or fields(key)
  budgets[key] = b
  if b.unit ~= want then bad = true end
end
local keys, amounts, n = {}, {}, 0
for key, micro in string.gmatch(ARGV[11], '(%S+) (%S+)') do
  n = n + 1
  keys[n], amounts[n] = key, tonumber(micro)
end
if bad then -- Python words the error from these records
  local out = {'check'}
  for i = 1, n do out[#out + 1] = budget_record(keys[i]) end
  return out
end
-- A retry of this very call (reply lost, client retried): the same reservation.
if redis.call('EXISTS', P .. 'r:' .. rid) == 1 then return {'new'} end
-- Before the key lookup: a lapsed lease frees its idempotency key. An expiry changes the
-- budgets' counters, so read them again then (rare: leases are renewed or settled).
if expire_due(now) > 0 then
  for key in pairs(budgets) do budgets[key] = fields(key) end
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
