--! needs: base holds
-- expire: [now, clock|null] -> {'skew', server_time} | {'ok', count}

local A = args({'int', 'int?'})
local at, server = ledger_time(A[1], A[2])
if not at then return {'skew', fmt(server)} end
want_due(at)
local need = ask()
if need then return need end
return {'ok', expire_due(at)}
