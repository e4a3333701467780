--! needs: base usage
-- formula (a test hook: the formula alone, on counters given as arguments, no keys touched):
-- committed, reserved, counts, reported, since, limit_micro -> {'ok', used, remaining}

local u = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7])}
local total = used(u)
return {'ok', fmt(total), fmt(tonumber(ARGV[8]) - total)}
