--! needs: base usage
-- formula (a test hook: the formula alone, on counters given as arguments, no keys touched):
-- [committed, reserved, counts, reported, since, outstanding, reported_at, inside, covers,
--  limit_micro] (usage()'s counters, then the limit) -> {'ok', used, remaining}

local A = args({'int', 'int', 'int', 'int', 'int', 'int', 'int', 'int', 'int', 'int'})
local total = used(A)
return {'ok', fmt(total), fmt(A[10] - total)}
