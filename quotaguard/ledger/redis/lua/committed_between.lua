--! needs: base usage
-- committed_between: [key, start, end] -> {'unknown'} | {'ok', micro}
-- The commits scored by commit time in [start, end): a read, nothing expires.

local A = args({'key', 'int', 'int'})
local key = A[1]
if redis.call('HEXISTS', K('b:' .. key), 'unit') == 0 then return {'unknown'} end
if A[3] <= A[2] then return {'ok', 0} end
return {'ok', scan(key, A[2], A[3])}
