--! needs: base holds
-- commit: rid, now, month, has_actual, actual_json, n, (key, unit, micro)*
-- -> {'notfound'} | {'bad', reservation} | {'ok', reservation}

local function add_commit(key, at, month, micro, member)
  local bkey = P .. 'b:' .. key
  if redis.call('EXISTS', bkey) == 0 then return end -- never a budget here: nothing to count
  redis.call('HINCRBY', bkey, 'ncommits', 1)
  if micro > 0 then
    redis.call('HINCRBY', bkey, 'total', fmt(micro))
    redis.call('HINCRBY', P .. 'm:' .. key, month, fmt(micro))
    redis.call('ZADD', P .. 'c:' .. key, fmt(at), member .. ':' .. fmt(micro))
  end
end

local rid, now = ARGV[3], tonumber(ARGV[4])
local month = string.match(ARGV[5], '^(%S+)') -- the month's index: where its sum goes
local has_actual, n = ARGV[6] == '1', tonumber(ARGV[8])
local r = hash(P .. 'r:' .. rid)
if not r.id then return {'notfound'} end
local held, units = holds_of(r.holds), {}
for _, h in ipairs(held) do units[h[1]] = h[2] end
if has_actual then
  for i = 1, n do
    local a = 9 + 3 * (i - 1)
    if units[ARGV[a]] ~= ARGV[a + 1] then return {'bad', reservation(rid)} end
  end
end
-- Ended once: committed or released stand; expired may still be committed (the work ran).
if r.state == 'committed' or r.state == 'released' then return {'ok', reservation(rid)} end
if r.state == 'held' then unhold(rid) end
if has_actual then
  for i = 1, n do
    local a = 9 + 3 * (i - 1)
    add_commit(ARGV[a], now, month, tonumber(ARGV[a + 2]), rid .. ':' .. i)
  end
else
  for i, h in ipairs(held) do add_commit(h[1], now, month, h[3], rid .. ':' .. i) end
end
redis.call('HSET', P .. 'r:' .. rid, 'state', 'committed', 'ended', fmt(now),
  'actual', has_actual and ARGV[7] or r.charges)
if r.state == 'expired' then redis.call('SREM', P .. 'lapsed', rid) end
return {'ok', reservation(rid)}
