--! needs: base
-- remove_budget: [key] -> {'unknown'} | {'outstanding'} | {'ok'}

local key = args({'key'})[1]
local bkey = K('b:' .. key)
local b = hash(bkey)
if not b.unit then return {'unknown'} end
if tonumber(b.outstanding or '0') > 0 then return {'outstanding'} end
-- Keep the commits (and the hash, without 'unit'): spend is never forgotten.
redis.call('HDEL', bkey, 'unit', 'limit', 'limit_micro', 'window', 'wkind', 'wstart', 'wend',
  'wdays', 'reported', 'reported_at', 'covers', 'inside')
redis.call('HSET', bkey, 'key', key)
redis.call('SREM', K('budgets'), key)
return {'ok'}
