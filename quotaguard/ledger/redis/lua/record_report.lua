--! needs: base holds
-- record_report: [key, micro, at, now|null, own_clock (0|1), covers_sent (0|1)]
-- -> {'unknown'} | {'skew', server_time} | {'ahead', server_time} | {'ok', 0|1}

local A = args({'key', 'int', 'int', 'int?', 'int', 'int'})
local bkey = K('b:' .. A[1])
if A[5] == 1 then -- a report from the future would make every true one after it look older
  local server, skewed = ledger_time(A[4], NULL)
  if not server then return {'skew', fmt(skewed)} end
  if A[3] - server > MAX_SKEW then return {'ahead', fmt(server)} end
end
if redis.call('HEXISTS', bkey, 'unit') == 0 then return {'unknown'} end
local prev = redis.call('HGET', bkey, 'reported_at')
-- Set-if-newer: N workers seeding the same report at once leave one value, never a sum.
if prev and A[3] < tonumber(prev) then return {'ok', 0} end
local covers = A[6] == 1 and '1' or '0'
-- The read phase: the records of this budget's holds sent before the report.
local sent = covers == '1' and redis.call('HGETALL', K('s:' .. A[1])) or {}
for i = 1, #sent, 2 do
  if tonumber(sent[i + 1]) < A[3] then want('r:' .. sent[i]) end
end
local need = ask()
if need then return need end
redis.call('HSET', bkey, 'reported', fmt(A[2]), 'reported_at', fmt(A[3]), 'covers', covers)
-- One scan of this budget's sent holds: the held amount inside the report.
local inside = 0
if covers == '1' then
  for i = 1, #sent, 2 do
    if tonumber(sent[i + 1]) < A[3] then
      for _, h in ipairs(holds_of(redis.call('HGET', K('r:' .. sent[i]), 'holds'))) do
        if h[1] == A[1] then inside = inside + h[3] end
      end
    end
  end
end
redis.call('HSET', bkey, 'inside', fmt(inside))
return {'ok', 1}
