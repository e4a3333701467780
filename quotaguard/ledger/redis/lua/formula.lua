--! needs: base usage
-- formula (a test hook: the formula alone, on counters given as arguments, no keys touched):
-- [committed, reserved, counts, reported, since, limit_micro] -> {'ok', used, remaining}

local A = args({'int', 'int', 'int', 'int', 'int', 'int'})
local total = used(A)
return {'ok', fmt(total), fmt(A[6] - total)}
