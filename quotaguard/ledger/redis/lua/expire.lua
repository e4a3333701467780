--! needs: base holds
-- expire: [now, clock|null] -> {'skew', server_time} | {'ok', count}

local A = args({'int', 'int?'})
local at, server = ledger_time(A[1], A[2])
if not at then return {'skew', fmt(server)} end
return {'ok', expire_due(at)}
