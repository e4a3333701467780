--! needs: base
-- reservations: [cursor, count] -> {'ok', next cursor ('0': the last page), reservation...}
-- One SCAN step over the r:<id> hashes, for the audit read (ledger/audit.py), which filters
-- and drops a record SCAN gives twice. A read: nothing expires, nothing is written. The
-- keys are found by the scan, so none can be named in KEYS; all share the prefix's slot.

local A = args({'str', 'int'})
if A[2] < 1 then refuse('count') end
local found = redis.call('SCAN', A[1], 'MATCH', P .. 'r:*', 'COUNT', A[2])
local out = {'ok', found[1]}
for _, key in ipairs(found[2]) do
  local _, flat = hash(key)
  out[#out + 1] = flat
end
return out
