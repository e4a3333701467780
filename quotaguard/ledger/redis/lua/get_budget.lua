--! needs: base
-- get_budget: [key] -> {'unknown'} | {'ok', budget}

local key = args({'key'})[1]
if redis.call('HEXISTS', K('b:' .. key), 'unit') == 0 then return {'unknown'} end
return {'ok', budget_record(key)}
