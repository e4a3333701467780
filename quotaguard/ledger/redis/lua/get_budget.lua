--! needs: base
-- get_budget: key -> {'unknown'} | {'ok', budget}

if redis.call('HEXISTS', P .. 'b:' .. ARGV[3], 'unit') == 0 then return {'unknown'} end
return {'ok', budget_record(ARGV[3])}
