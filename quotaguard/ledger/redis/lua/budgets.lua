--! needs: base
-- budgets: [] -> {'ok', budget...}

args({})
local out = {'ok'}
for _, key in ipairs(redis.call('SMEMBERS', P .. 'budgets')) do
  out[#out + 1] = budget_record(key)
end
return out
