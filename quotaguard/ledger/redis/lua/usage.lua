-- A budget's counters in its window: the remaining-budget rule's inputs.
-- The formula is quotaguard/engine/rules.py's used_micro(); test_redis.py holds both to it.

local US_PER_DAY = 86400000000

-- The caller's clock, which dates windows: now, and the UTC calendar month around it as
-- Python passed it ([index, start, end]): Lua knows no calendar.
local function clock(now, month)
  items({month}, {'int', 'int', 'int'}, 'month')
  return {now = now, month = fmt(month[1]), mstart = month[2], mend = month[3]}
end

-- [s, e) of a budget's window at the clock's now; nil for an open side.
local function bounds(b, c)
  local kind = b.wkind
  if kind == 'fixed' then return tonumber(b.wstart), tonumber(b.wend) end
  if kind == 'calendar_month' then return c.mstart, c.mend end
  if kind == 'rolling_days' then return c.now - tonumber(b.wdays) * US_PER_DAY, nil end
  return nil, nil
end

-- The commits of zset index .. key ('c:' by commit time, 'f:' by floor time) in [s, e).
local function scan(key, s, e, index)
  local lo = s and fmt(s) or '-inf'
  local hi = e and ('(' .. fmt(e)) or '+inf'
  local total = 0
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', K((index or 'c:') .. key), lo, hi)) do
    total = total + tonumber(string.match(member, '(%d+)$'))
  end
  return total
end

-- {committed, reserved, report_counts, reported, since_report, outstanding, reported_at,
--  inside, covers}: "since" a report that covers sent work is by floor time (f:), else by
-- commit time (c:).
local function usage(key, b, c)
  local s, e = bounds(b, c)
  local committed
  if b.wkind == 'none' then
    committed = tonumber(b.total or '0')
  elseif b.wkind == 'calendar_month' then
    committed = tonumber(redis.call('HGET', K('m:' .. key), c.month) or '0')
  else
    committed = scan(key, s, e)
  end
  local reserved = tonumber(b.reserved or '0')
  local outstanding = tonumber(b.outstanding or '0')
  local at = b.reported_at and tonumber(b.reported_at)
  if at and (s == nil or at >= s) then
    local covers = b.covers == '1'
    local since = scan(key, (s == nil or at > s) and at or s, e, covers and 'f:' or 'c:')
    return {committed, reserved, 1, tonumber(b.reported), since, outstanding, at,
      tonumber(b.inside or '0'), covers and 1 or 0}
  end
  return {committed, reserved, 0, 0, 0, outstanding, 0, 0, 0}
end

local function used(u)
  local here = u[1] + u[2]
  if u[3] == 0 then return here end
  return math.max(here, u[4] + u[5] + u[2] - u[8])
end
