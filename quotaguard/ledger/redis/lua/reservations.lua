--! needs: base
-- reservations: [rids] -> {'ok', reservation...}
-- The records of these ids, for the audit read (ledger/audit.py). Python finds the ids by
-- SCAN on the namespace's node (a key found by a SCAN inside a script could not be
-- declared) and declares their r:<id> keys. One gone since the SCAN (trimmed) is left out.
-- A read: nothing expires, nothing is written.

local A = args({'list'})
local out = {'ok'}
for _, rid in ipairs(A[1]) do
  if type(rid) ~= 'string' then refuse('rid') end
  local _, flat = hash(K('r:' .. rid))
  if #flat > 0 then out[#out + 1] = flat end
end
return out
