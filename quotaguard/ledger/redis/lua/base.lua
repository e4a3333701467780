-- quotaguard RedisLedger: the helpers every operation's script starts with.
--
-- Each operation is one script (one EVALSHA): the helper files it names on its first line,
-- then its own file, joined by quotaguard/ledger/redis/scripts.py.
-- ARGV[1] = operation, ARGV[2] = <prefix> = "{namespace}:", ARGV[3] = max_skew (us),
-- ARGV[4] = the operation's arguments: one JSON array (args()), ARGV[5] = '1': check keys.
-- Every key is <prefix>..., so all of them share the namespace's hash tag (one cluster slot).
--
-- KEYS: every key the script touches, declared (the convention every script follows).
-- Redis Cluster checks only declared keys: during a slot migration it sends a script
-- whose declared keys have moved to the new node (ASK) or are split (TRYAGAIN), but an
-- undeclared key that has moved fails the script where it is touched, after any write
-- before it. So a script names every key through K(name) (never P .. name), and, with
-- ARGV[5] = '1' (on a cluster; in the tests on every server), K() refuses one that is
-- not in KEYS. Python declares the keys its arguments name (scripts.py: KEYS_OF); keys a
-- script finds by reading (due leases, listed ids, a reservation's budgets) it asks for
-- with want(name) in a read phase that writes nothing: if any is missing the script
-- answers {'need', key...} (ask()) and Python sends it again with them declared. Keys
-- found by SCAN cannot be declared that way: Python SCANs them (ledger/redis/scanned.py)
-- and passes them to a script that declares them.
--   leases        zset  reservation id -> lease expiry (held reservations only)
--   idem          hash  idempotency key -> reservation id (held and committed)
--   ext           hash  external id -> reservation id
--   doubt         set   ids held and in doubt (their work may have been sent)
--   lapsed        set   ids expired after their work may have been sent (bound or in
--                       doubt) and not committed since
--   ended         zset  ids of ended reservations not owed -> end time: what trim may forget
--   ended_listed  string  set once every record that ended before 'ended' existed is in it
--   budgets       set   budget keys
--   b:<key>       hash  definition (unit, limit, limit_micro, w*, window) + counters
--                       (reserved, outstanding, reported, reported_at, total, ncommits,
--                       covers: 1 when the report covers sent work, inside: the held
--                       amount of holds sent before such a report).
--                       A removed budget keeps the hash without 'unit': its commits survive.
--   c:<key>       zset  commits, score = commit time (epoch us), member = "<rid>:<i>:<micro>"
--   f:<key>       zset  the same commits, score = floor time (when the reservation's work
--                       was sent, else the commit time): "since" a covering report
--   s:<key>       hash  held reservation id -> sent_at (epoch us), for holds bound with one
--   m:<key>       hash  UTC month index (year*12 + month-1) -> committed micro-units
--   r:<id>        hash  one reservation (holds: JSON [[key, unit, micro], ...])
-- Times and amounts are integers (epoch microseconds, micro-units), exact below 2^53 in
-- Lua's doubles. Numbers go back to Redis through fmt(): Lua's own tostring would round.
-- Python knows the calendar: it passes the month around "now" as [index, start, end].

local P = ARGV[2]
local MAX_SKEW = tonumber(ARGV[3])
local NULL = cjson.null
local CHECK = ARGV[5] == '1'
local DECLARED, MISSING = {}, {}
if CHECK then for _, key in ipairs(KEYS) do DECLARED[key] = true end end

-- The full name of a key this script touches; with CHECK, one not declared is an error (a
-- script that forgot to want() it: a bug, never a wrong answer).
local function K(name)
  local key = P .. name
  if CHECK and not DECLARED[key] then
    error({err = 'ERR quotaguard ' .. tostring(ARGV[1]) .. ': key not declared: ' .. key})
  end
  return key
end

-- In the read phase: the script will touch name. True when it is declared (so it may be
-- read now); otherwise it is noted for ask().
local function want(name)
  local key = P .. name
  if not CHECK or DECLARED[key] then return true end
  if MISSING[key] == nil then
    MISSING[key] = true
    MISSING[#MISSING + 1] = key
  end
  return false
end

-- The end of the read phase: {'need', key...} when want() noted any, else nil.
local function ask()
  if #MISSING == 0 then return nil end
  local out = {'need'}
  for _, key in ipairs(MISSING) do out[#out + 1] = key end
  return out
end

local function fmt(n) return string.format('%.0f', n + 0) end -- + 0 turns -0 into 0

local function refuse(why)
  error({err = 'ERR quotaguard ' .. tostring(ARGV[1]) .. ': bad arguments (' .. why .. ')'})
end

local function is_int(v)
  return type(v) == 'number' and v == math.floor(v) and math.abs(v) <= 2 ^ 53
end

local KINDS = {
  int = is_int,
  ['int?'] = function(v) return v == NULL or is_int(v) end,
  str = function(v) return type(v) == 'string' end,
  id = function(v) return type(v) == 'string' and v ~= '' end,
  -- a budget key or a unit: non-empty, no space or control character
  key = function(v) return type(v) == 'string' and v ~= '' and not string.find(v, '[%c%s]') end,
  list = function(v) return type(v) == 'table' end,
}

-- The operation's arguments, ARGV[4], checked against spec (one kind per element). A field
-- missing, extra or of another kind is refused with an error: none can drop out silently.
local function args(spec)
  if not MAX_SKEW then refuse('max_skew') end
  local ok, a = pcall(cjson.decode, ARGV[4] or '')
  if not ok or type(a) ~= 'table' then refuse('not a JSON array') end
  local n = 0
  for k in pairs(a) do
    if not is_int(k) or k < 1 or k > #spec then refuse('not an array of ' .. #spec) end
    n = n + 1
  end
  if n ~= #spec then refuse(#spec .. ' arguments expected, got ' .. n) end
  for i, kind in ipairs(spec) do
    if not KINDS[kind](a[i]) then refuse('argument ' .. i .. ' is not ' .. kind) end
  end
  return a
end

-- Each item of list is an array matching spec.
local function items(list, spec, name)
  for _, item in ipairs(list) do
    if type(item) ~= 'table' or #item ~= #spec then refuse(name .. ' item') end
    for i, kind in ipairs(spec) do
      if not KINDS[kind](item[i]) then refuse(name .. ' item field ' .. i) end
    end
  end
  local n = 0
  for _ in pairs(list) do n = n + 1 end
  if n ~= #list then refuse(name .. ' is not an array') end
  return list
end

-- The ledger's time for leases: given (the caller's, or the client machine's), or, given
-- null, the server's TIME, which the caller's now must be within MAX_SKEW of. Returns the
-- time, or nil and the server's time for a caller too far off (the script then answers
-- {'skew', time} before it changes anything).
local function ledger_time(now, given)
  if given ~= NULL then return given end
  local t = redis.call('TIME')
  local server = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if now ~= NULL and math.abs(now - server) > MAX_SKEW then return nil, server end
  return server
end

local function hash(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h, flat
end

local function budget_record(key)
  local _, flat = hash(K('b:' .. key))
  return flat
end

local function reservation(rid)
  local _, flat = hash(K('r:' .. rid))
  return flat
end
