-- quotaguard RedisLedger: the helpers every operation's script starts with.
--
-- Each operation is one script (one EVALSHA): the helper files it names on its first line,
-- then its own file, joined by quotaguard/ledger/redis/scripts.py.
-- KEYS[1] = <prefix>leases; ARGV[1] = operation, ARGV[2] = <prefix> = "{namespace}:".
-- Every key is <prefix>..., so all of them share the namespace's hash tag (one cluster slot).
--   leases        zset  reservation id -> lease expiry (held reservations only)
--   idem          hash  idempotency key -> reservation id (held and committed)
--   ext           hash  external id -> reservation id
--   lapsed        set   ids expired while bound to a job and not committed since
--   budgets       set   budget keys
--   b:<key>       hash  definition (unit, limit, limit_micro, w*, window) + counters
--                       (reserved, outstanding, reported, reported_at, total, ncommits).
--                       A removed budget keeps the hash without 'unit': its commits survive.
--   c:<key>       zset  commits, score = commit time (epoch us), member = "<rid>:<i>:<micro>"
--   m:<key>       hash  UTC month index (year*12 + month-1) -> committed micro-units
--   r:<id>        hash  one reservation
-- Times and amounts are integers (epoch microseconds, micro-units), exact below 2^53 in
-- Lua's doubles. Numbers go back to Redis through fmt(): Lua's own tostring would round.
-- Python knows the calendar: it passes the month around "now" ("<index> <start> <end>").

local P = ARGV[2]

local function fmt(n) return string.format('%.0f', n + 0) end -- + 0 turns -0 into 0

local function hash(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h, flat
end

local function budget_record(key)
  local _, flat = hash(P .. 'b:' .. key)
  return flat
end

local function reservation(rid)
  local _, flat = hash(P .. 'r:' .. rid)
  return flat
end
