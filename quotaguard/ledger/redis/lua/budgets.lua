--! needs: base
-- budgets: [] -> {'ok', budget...}

args({})
local out = {'ok'}
local keys = redis.call('SMEMBERS', K('budgets'))
for _, key in ipairs(keys) do want('b:' .. key) end
local need = ask()
if need then return need end
for _, key in ipairs(keys) do out[#out + 1] = budget_record(key) end
return out
