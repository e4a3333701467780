--! needs: base
-- put_budget: [key, unit, limit, limit_micro, window_json, wkind, wstart|null, wend|null,
--   wdays|null] -> {'unit', unit in use} | {'ok'}

local A = args({'key', 'key', 'str', 'int', 'str', 'key', 'int?', 'int?', 'int?'})
local key = A[1]
local bkey = K('b:' .. key)
local b = hash(bkey)
if b.unit and b.unit ~= A[2]
    and (tonumber(b.reserved or '0') ~= 0 or tonumber(b.ncommits or '0') > 0) then
  return {'unit', b.unit}
end
if not b.unit then
  -- New, or back after removal: fresh counters, but earlier commits still count.
  redis.call('HDEL', bkey, 'reported', 'reported_at', 'covers', 'inside')
  redis.call('HSET', bkey, 'reserved', 0, 'outstanding', 0)
end
local function opt(v) return v == NULL and '' or fmt(v) end
redis.call('HSET', bkey, 'key', key, 'unit', A[2], 'limit', A[3], 'limit_micro', fmt(A[4]),
  'window', A[5], 'wkind', A[6], 'wstart', opt(A[7]), 'wend', opt(A[8]), 'wdays', opt(A[9]))
redis.call('SADD', K('budgets'), key)
return {'ok'}
