--! needs: base
-- put_budget: key, unit, limit, limit_micro, window_json, wkind, wstart, wend, wdays
-- -> {'unit', unit in use} | {'ok'}

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
