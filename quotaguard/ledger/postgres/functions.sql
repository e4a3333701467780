-- The PostgresLedger's functions: each operation that changes more than one row is one call
-- of one of these, so it is one statement, one transaction and one round trip.
--
-- Every function is PL/pgSQL, which keeps its plans for the session; a SQL-language function
-- called from one is planned again on every call (PostgreSQL <= 17), which cost more than
-- the work.
--
-- Locks, always in this order, so that no two calls can wait for each other: budget rows
-- first, sorted by key (qg_lock), then reservation rows, sorted by id. A call that must end
-- due leases locks their budgets together with its own, in one sorted pass.
-- Instants are epoch microseconds; amounts micro-units. Python passes the calendar month
-- around the caller's now (no calendar here), and the ledger's time for leases (p_clock), or
-- NULL: then the server's now() judges leases, refusing a caller now more than p_skew away.

CREATE OR REPLACE FUNCTION qg_time(p_clock bigint, p_now bigint, p_skew bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE server bigint;
BEGIN
  IF p_clock IS NOT NULL THEN RETURN p_clock; END IF;
  server := (extract(epoch FROM now()) * 1000000)::bigint;
  IF p_now IS NOT NULL AND abs(p_now - server) > p_skew THEN
    RAISE EXCEPTION 'clock skew' USING ERRCODE = 'QG001', DETAIL = server::text;
  END IF;
  RETURN server;
END $$;

CREATE OR REPLACE FUNCTION qg_lock(p_keys text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM budgets WHERE key = ANY(p_keys) ORDER BY key FOR UPDATE;
END $$;

-- Committed spend of one budget in [lo, hi) (NULL: open), from the index commits_by_time;
-- p_floor: by floor time (the reservation's sent_at, else the commit time; commits_by_floor),
-- how a report that covers sent work counts "since" it.
CREATE OR REPLACE FUNCTION qg_sum(p_key text, lo bigint, hi bigint, p_floor boolean = false)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF p_floor THEN
    RETURN (SELECT COALESCE(sum(amount), 0)::bigint FROM commits
            WHERE budget = p_key AND floor_at >= COALESCE(lo, -9223372036854775807)
              AND floor_at < COALESCE(hi, 9223372036854775807));
  END IF;
  RETURN (SELECT COALESCE(sum(amount), 0)::bigint FROM commits
          WHERE budget = p_key AND at >= COALESCE(lo, -9223372036854775807)
            AND at < COALESCE(hi, 9223372036854775807));
END $$;

-- A budget's counters in its window at the caller's now: the remaining-budget rule's inputs
-- (quotaguard.engine.rules.Usage). The one place that reads reports and commits for `used`.
-- -> [committed, reserved, reported, since, outstanding, reported_at, inside, covers]
CREATE OR REPLACE FUNCTION qg_usage(b budgets, p_now bigint, p_mstart bigint, p_mend bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE lo bigint; hi bigint; committed bigint;
BEGIN
  lo := CASE b.wkind WHEN 'fixed' THEN b.wstart WHEN 'calendar_month' THEN p_mstart
        WHEN 'rolling_days' THEN p_now - b.wdays * 86400000000 END;
  hi := CASE b.wkind WHEN 'fixed' THEN b.wend WHEN 'calendar_month' THEN p_mend END;
  committed := CASE WHEN b.wkind = 'none' THEN b.total ELSE qg_sum(b.key, lo, hi) END;
  IF b.reported_at IS NOT NULL AND (lo IS NULL OR b.reported_at >= lo) THEN
    RETURN jsonb_build_array(committed, b.reserved, b.reported,
      qg_sum(b.key, greatest(lo, b.reported_at), hi, b.covers), b.outstanding, b.reported_at,
      b.inside, b.covers);
  END IF;
  RETURN jsonb_build_array(committed, b.reserved, NULL, 0, b.outstanding, NULL, 0, false);
END $$;

-- quotaguard.engine.rules.used_micro() on qg_usage()'s counters.
CREATE OR REPLACE FUNCTION qg_used(u jsonb) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF u->2 = 'null'::jsonb THEN
    RETURN (u->>0)::bigint + (u->>1)::bigint;
  END IF;
  RETURN greatest((u->>0)::bigint + (u->>1)::bigint,
                  (u->>2)::bigint + (u->>3)::bigint + (u->>1)::bigint - (u->>6)::bigint);
END $$;

-- A hold sent at p_sent is inside budget b's report (engine.rules: a covering report holds
-- the work sent before it): the part of p_amount to take off b's `used`.
CREATE OR REPLACE FUNCTION qg_inside(b budgets, p_sent bigint, p_amount bigint)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN CASE WHEN b.covers AND p_sent < b.reported_at THEN p_amount ELSE 0 END;
END $$;

-- Let go of a held reservation's holds, and of the part a covering report holds (its
-- budgets are locked by the caller; it is still 'held').
CREATE OR REPLACE FUNCTION qg_unhold(p_rid text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE budgets b SET reserved = b.reserved - h.amount, outstanding = b.outstanding - 1,
    inside = b.inside - qg_inside(b, r.sent_at, h.amount)
  FROM holds h JOIN reservations r ON r.id = h.reservation_id
  WHERE h.reservation_id = p_rid AND b.key = h.budget;
END $$;

-- End one reservation (quotaguard.engine.reservations): a released one, and an expired one
-- whose work was never sent, give up their idempotency key.
CREATE OR REPLACE FUNCTION qg_finish(p_rid text, p_state text, p_at bigint, p_actual text)
RETURNS reservations LANGUAGE plpgsql AS $$
DECLARE r reservations;
BEGIN
  UPDATE reservations SET state = p_state, ended_at = p_at, actual = p_actual,
    idem = CASE WHEN p_state = 'released' OR (p_state = 'expired'
      AND external_id IS NULL AND in_doubt_since IS NULL) THEN NULL ELSE idem END
  WHERE id = p_rid RETURNING * INTO r;
  RETURN r;
END $$;

-- Expire the listed reservations still held and due (their budgets locked by the caller).
CREATE OR REPLACE FUNCTION qg_expire_ids(p_due text[], p_clk bigint)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE rid text; n integer := 0;
BEGIN
  FOR rid IN SELECT id FROM reservations WHERE id = ANY(p_due) AND state = 'held'
      AND lease_expires_at <= p_clk ORDER BY id FOR UPDATE LOOP
    PERFORM qg_unhold(rid);
    PERFORM qg_finish(rid, 'expired', p_clk, NULL);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

-- Expire every due lease, plus lock p_keys: one sorted pass over both sets of budgets.
CREATE OR REPLACE FUNCTION qg_sweep(p_clk bigint, p_keys text[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE due text[];
BEGIN
  due := ARRAY(SELECT id FROM reservations WHERE state = 'held' AND lease_expires_at <= p_clk);
  IF cardinality(due) = 0 THEN
    PERFORM qg_lock(p_keys);
    RETURN 0;
  END IF;
  PERFORM qg_lock(ARRAY(SELECT unnest(p_keys) UNION
                        SELECT budget FROM holds WHERE reservation_id = ANY(due)));
  RETURN qg_expire_ids(due, p_clk);
END $$;

CREATE OR REPLACE FUNCTION qg_budget_json(b budgets) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  RETURN jsonb_build_array(b.key, b.unit, b.limit_text, b.window_json);
END $$;

CREATE OR REPLACE FUNCTION qg_put_budget(p_key text, p_unit text, p_limit text,
  p_limit_micro bigint, p_wkind text, p_wstart bigint, p_wend bigint, p_wdays bigint,
  p_window text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE b budgets;
BEGIN
  SELECT * INTO b FROM budgets WHERE key = p_key FOR UPDATE;
  IF FOUND THEN
    IF b.unit <> p_unit
       AND (b.reserved <> 0 OR EXISTS (SELECT 1 FROM commits WHERE budget = p_key)) THEN
      RETURN b.unit;
    END IF;
    UPDATE budgets SET unit = p_unit, limit_text = p_limit, limit_micro = p_limit_micro,
      wkind = p_wkind, wstart = p_wstart, wend = p_wend, wdays = p_wdays,
      window_json = p_window WHERE key = p_key;
    RETURN NULL;
  END IF;
  -- A key that returns counts its old commits again (remove_budget keeps them).
  INSERT INTO budgets(key, unit, limit_text, limit_micro, wkind, wstart, wend, wdays,
                      window_json, total)
  VALUES (p_key, p_unit, p_limit, p_limit_micro, p_wkind, p_wstart, p_wend, p_wdays, p_window,
          (SELECT COALESCE(sum(amount), 0)::bigint FROM commits WHERE budget = p_key))
  ON CONFLICT (key) DO UPDATE SET unit = excluded.unit, limit_text = excluded.limit_text,
    limit_micro = excluded.limit_micro, wkind = excluded.wkind, wstart = excluded.wstart,
    wend = excluded.wend, wdays = excluded.wdays, window_json = excluded.window_json;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION qg_remove_budget(p_key text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE b budgets;
BEGIN
  SELECT * INTO b FROM budgets WHERE key = p_key FOR UPDATE;
  IF NOT FOUND THEN RETURN 'unknown'; END IF;
  IF b.outstanding > 0 THEN RETURN 'outstanding'; END IF;
  DELETE FROM budgets WHERE key = p_key; -- its commits stay
  RETURN NULL;
END $$;

-- reserve: p_keys sorted and distinct, p_units and p_amounts (micro) alongside.
-- -> ('new', lease end, NULL) | ('check', NULL, budgets) | ('replay'|'conflict', NULL, row)
--    | ('reject', NULL, [[budget, usage], ...])
CREATE OR REPLACE FUNCTION qg_reserve(p_now bigint, p_clock bigint, p_skew bigint,
  p_mstart bigint, p_mend bigint, p_lease bigint, p_rid text, p_idem text, p_fp text,
  p_charges text, p_keys text[], p_units text[], p_amounts bigint[],
  OUT tag text, OUT val bigint, OUT detail text) LANGUAGE plpgsql AS $$
DECLARE clk bigint; r reservations; b budgets; admit boolean := true;
  seen jsonb := '[]'::jsonb;
BEGIN
  clk := qg_time(p_clock, p_now, p_skew);
  IF (SELECT count(*) FROM budgets JOIN unnest(p_keys, p_units) AS w(k, un)
      ON key = w.k AND unit = w.un) <> cardinality(p_keys) THEN
    tag := 'check'; -- Python words the error from these budgets
    detail := (SELECT COALESCE(jsonb_agg(qg_budget_json(x)), '[]') FROM budgets x
               WHERE x.key = ANY(p_keys))::text;
    RETURN;
  END IF;
  SELECT * INTO r FROM reservations WHERE id = p_rid;
  IF FOUND THEN -- this very call ran already, or was undone (a tombstone): nothing more
    tag := 'new'; val := r.lease_expires_at; RETURN;
  END IF;
  -- Before the key lookup: a lapsed lease frees its idempotency key.
  PERFORM qg_sweep(clk, p_keys);
  IF p_idem IS NOT NULL THEN
    SELECT * INTO r FROM reservations WHERE idem = p_idem;
    IF FOUND THEN
      tag := CASE WHEN r.fp = p_fp THEN 'replay' ELSE 'conflict' END;
      detail := row_to_json(r)::text;
      RETURN;
    END IF;
  END IF;
  FOR i IN 1 .. cardinality(p_keys) LOOP
    SELECT * INTO b FROM budgets WHERE key = p_keys[i];
    IF NOT FOUND OR b.unit <> p_units[i] THEN -- removed or changed while we waited for it
      tag := 'check';
      detail := (SELECT COALESCE(jsonb_agg(qg_budget_json(x)), '[]') FROM budgets x
                 WHERE x.key = ANY(p_keys))::text;
      RETURN;
    END IF;
    IF (b.wkind = 'fixed' AND NOT (b.wstart <= p_now AND p_now < b.wend))
       OR p_amounts[i] > b.limit_micro - qg_used(qg_usage(b, p_now, p_mstart, p_mend)) THEN
      admit := false;
      EXIT;
    END IF;
  END LOOP;
  IF NOT admit THEN -- Python words the violations from these counters (read again: rare)
    FOR i IN 1 .. cardinality(p_keys) LOOP
      SELECT * INTO b FROM budgets WHERE key = p_keys[i];
      seen := seen || jsonb_build_array(jsonb_build_array(
        qg_budget_json(b), qg_usage(b, p_now, p_mstart, p_mend)));
    END LOOP;
    tag := 'reject'; detail := seen::text; RETURN;
  END IF;
  INSERT INTO reservations(id, idem, fp, state, created_at, lease_expires_at, charges)
  VALUES (p_rid, p_idem, p_fp, 'held', p_now, clk + p_lease, p_charges)
  ON CONFLICT (idem) DO NOTHING;
  IF NOT FOUND THEN -- the same key, held by a call that committed while we waited
    SELECT * INTO r FROM reservations WHERE idem = p_idem;
    tag := CASE WHEN r.fp = p_fp THEN 'replay' ELSE 'conflict' END;
    detail := row_to_json(r)::text;
    RETURN;
  END IF;
  INSERT INTO holds(reservation_id, budget, unit, amount)
  SELECT p_rid, k, un, a FROM unnest(p_keys, p_units, p_amounts) AS x(k, un, a);
  UPDATE budgets SET reserved = reserved + x.a, outstanding = outstanding + 1
  FROM unnest(p_keys, p_amounts) AS x(k, a) WHERE key = x.k;
  tag := 'new'; val := clk + p_lease;
END $$;

-- The undo of a reserve whose outcome is unknown: release it, or leave a released record
-- under its id so that a late arrival of the reserve does nothing.
CREATE OR REPLACE FUNCTION qg_cancel(p_rid text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM qg_lock(ARRAY(SELECT budget FROM holds WHERE reservation_id = p_rid));
  IF EXISTS (SELECT 1 FROM reservations WHERE id = p_rid AND state = 'held' FOR UPDATE) THEN
    PERFORM qg_unhold(p_rid);
    PERFORM qg_finish(p_rid, 'released', p_now, NULL);
  ELSE
    INSERT INTO reservations(id, state, created_at, lease_expires_at, ended_at, charges)
    VALUES (p_rid, 'released', p_now, p_now, p_now, '[]') ON CONFLICT DO NOTHING;
  END IF;
END $$;

-- commit: p_given false commits the charges held; else p_keys/p_amounts (micro) and p_actual.
-- -> ('ok'|'bad', NULL, row) | ('notfound', NULL, NULL)
CREATE OR REPLACE FUNCTION qg_commit(p_rid text, p_now bigint, p_clock bigint, p_skew bigint,
  p_given boolean, p_actual text, p_keys text[], p_units text[], p_amounts bigint[],
  OUT tag text, OUT val bigint, OUT detail text) LANGUAGE plpgsql AS $$
DECLARE r reservations;
BEGIN
  PERFORM qg_time(p_clock, p_now, p_skew);
  SELECT * INTO r FROM reservations WHERE id = p_rid;
  IF NOT FOUND THEN tag := 'notfound'; RETURN; END IF;
  tag := 'ok';
  IF p_given AND EXISTS (SELECT 1 FROM unnest(p_keys, p_units) AS a(k, un) WHERE NOT EXISTS (
      SELECT 1 FROM holds WHERE reservation_id = p_rid AND budget = a.k AND unit = a.un)) THEN
    tag := 'bad'; detail := row_to_json(r)::text; RETURN;
  END IF;
  IF r.state IN ('held', 'expired') THEN
    PERFORM qg_lock(ARRAY(SELECT budget FROM holds WHERE reservation_id = p_rid));
    SELECT * INTO r FROM reservations WHERE id = p_rid FOR UPDATE;
  END IF;
  IF r.state NOT IN ('held', 'expired') THEN -- ended already: the first outcome stands
    detail := row_to_json(r)::text; RETURN;
  END IF;
  IF r.state = 'held' THEN PERFORM qg_unhold(p_rid); END IF;
  IF p_given THEN
    INSERT INTO commits(budget, at, amount, reservation_id, floor_at)
    SELECT k, p_now, a, p_rid, COALESCE(r.sent_at, p_now)
    FROM unnest(p_keys, p_amounts) AS x(k, a);
    UPDATE budgets SET total = total + x.a
    FROM (SELECT k, sum(a)::bigint AS a FROM unnest(p_keys, p_amounts) AS y(k, a) GROUP BY k) x
    WHERE key = x.k;
  ELSE
    INSERT INTO commits(budget, at, amount, reservation_id, floor_at)
    SELECT budget, p_now, amount, p_rid, COALESCE(r.sent_at, p_now)
    FROM holds WHERE reservation_id = p_rid;
    UPDATE budgets SET total = total + h.amount
    FROM holds h WHERE h.reservation_id = p_rid AND key = h.budget;
  END IF;
  r := qg_finish(p_rid, 'committed', p_now, CASE WHEN p_given THEN p_actual ELSE r.charges END);
  detail := row_to_json(r)::text;
END $$;

CREATE OR REPLACE FUNCTION qg_release(p_rid text, p_now bigint, p_clock bigint, p_skew bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE r reservations;
BEGIN
  PERFORM qg_time(p_clock, p_now, p_skew);
  SELECT * INTO r FROM reservations WHERE id = p_rid;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF r.state = 'held' THEN
    PERFORM qg_lock(ARRAY(SELECT budget FROM holds WHERE reservation_id = p_rid));
    SELECT * INTO r FROM reservations WHERE id = p_rid FOR UPDATE;
    IF r.state = 'held' THEN
      PERFORM qg_unhold(p_rid);
      r := qg_finish(p_rid, 'released', p_now, NULL);
    END IF;
  END IF;
  RETURN row_to_json(r)::text;
END $$;

CREATE OR REPLACE FUNCTION qg_expire(p_now bigint, p_clock bigint, p_skew bigint)
RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
  RETURN qg_sweep(qg_time(p_clock, p_now, p_skew), '{}');
END $$;

-- renew (one id) and renew_many: due leases end first, so a lapsed lease is not renewed.
CREATE OR REPLACE FUNCTION qg_renew(p_rids text[], p_now bigint, p_clock bigint,
  p_skew bigint, p_lease bigint) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE clk bigint;
BEGIN
  clk := qg_time(p_clock, p_now, p_skew);
  PERFORM qg_sweep(clk, '{}');
  PERFORM 1 FROM reservations WHERE id = ANY(p_rids) AND state = 'held' ORDER BY id FOR UPDATE;
  RETURN QUERY UPDATE reservations r SET lease_expires_at = clk + p_lease
    WHERE id = ANY(p_rids) AND state = 'held' RETURNING row_to_json(r)::text;
END $$;

CREATE OR REPLACE FUNCTION qg_mark_in_doubt(p_rid text, p_now bigint, p_clock bigint,
  p_skew bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM qg_time(p_clock, p_now, p_skew);
  -- engine.reservations: only a held one is marked; an earlier mark stays.
  UPDATE reservations SET in_doubt_since = p_now
  WHERE id = p_rid AND state = 'held' AND in_doubt_since IS NULL;
  RETURN (SELECT row_to_json(r)::text FROM reservations r WHERE id = p_rid);
END $$;

-- -> NULL (kept, or older than the one stored) | 'unknown' | 'ahead:<server time>'
-- p_covers: the report holds the work sent before p_at (Braket); its `inside` is counted
-- again here, after the budget's lock (a statement of its own: it sees every change made
-- before the lock was granted).
CREATE OR REPLACE FUNCTION qg_record_report(p_key text, p_micro bigint, p_at bigint,
  p_now bigint, p_server boolean, p_skew bigint, p_covers boolean) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE server bigint; b budgets;
BEGIN
  IF p_server THEN
    server := qg_time(NULL, p_now, p_skew);
    IF p_at - server > p_skew THEN RETURN 'ahead:' || server; END IF;
  END IF;
  SELECT * INTO b FROM budgets WHERE key = p_key FOR UPDATE;
  IF NOT FOUND THEN RETURN 'unknown'; END IF;
  IF b.reported_at IS NOT NULL AND b.reported_at > p_at THEN RETURN NULL; END IF;
  UPDATE budgets SET reported = p_micro, reported_at = p_at, covers = p_covers,
    inside = CASE WHEN p_covers THEN (
      SELECT COALESCE(sum(h.amount), 0)::bigint FROM holds h JOIN reservations r
      ON r.id = h.reservation_id WHERE h.budget = p_key AND r.state = 'held'
        AND r.sent_at < p_at) ELSE 0 END
  WHERE key = p_key;
  RETURN NULL;
END $$;

-- bind: a held reservation's send time moves its holds into or out of covering reports.
-- -> NULL (no such reservation) | the row
CREATE OR REPLACE FUNCTION qg_bind(p_rid text, p_external text, p_sent bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE r reservations;
BEGIN
  SELECT * INTO r FROM reservations WHERE id = p_rid;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF r.state = 'held' AND p_sent IS NOT NULL THEN
    PERFORM qg_lock(ARRAY(SELECT budget FROM holds WHERE reservation_id = p_rid));
    SELECT * INTO r FROM reservations WHERE id = p_rid FOR UPDATE;
    IF r.state = 'held' AND p_sent IS DISTINCT FROM r.sent_at THEN
      UPDATE budgets b SET inside = b.inside + qg_inside(b, p_sent, h.amount)
        - qg_inside(b, r.sent_at, h.amount)
      FROM holds h WHERE h.reservation_id = p_rid AND b.key = h.budget;
    END IF;
  END IF;
  -- The work is found: no longer in doubt. An expired reservation bound now is owed:
  -- lapsed() selects expired rows with an external id.
  UPDATE reservations SET external_id = p_external, in_doubt_since = NULL,
    sent_at = COALESCE(p_sent, sent_at) WHERE id = p_rid RETURNING * INTO r;
  RETURN row_to_json(r)::text;
END $$;

-- Committed to p_key at commit instants in [lo, hi); NULL for an unknown key. A read only.
CREATE OR REPLACE FUNCTION qg_committed_between(p_key text, lo bigint, hi bigint)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM budgets WHERE key = p_key) THEN RETURN NULL; END IF;
  IF hi <= lo THEN RETURN 0; END IF;
  RETURN qg_sum(p_key, lo, hi);
END $$;

-- -> NULL for an unknown key, else [budget, usage, in doubt]
CREATE OR REPLACE FUNCTION qg_state(p_key text, p_now bigint, p_clock bigint, p_skew bigint,
  p_mstart bigint, p_mend bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE b budgets;
BEGIN
  PERFORM qg_sweep(qg_time(p_clock, p_now, p_skew), '{}');
  SELECT * INTO b FROM budgets WHERE key = p_key;
  IF NOT FOUND THEN RETURN NULL; END IF;
  RETURN jsonb_build_array(qg_budget_json(b), qg_usage(b, p_now, p_mstart, p_mend),
    (SELECT count(*) FROM holds JOIN reservations ON id = reservation_id
     WHERE budget = p_key AND state = 'held' AND in_doubt_since IS NOT NULL))::text;
END $$;

-- trim: forget at most p_limit rows dated before p_cut that no window can count (the rule
-- of quotaguard/ledger/retention.py): a budget's commits before the earlier of p_cut and its
-- window's start (qg_usage's lo; unwindowed: and its report), folded into one row at p_folded
-- (`total` has them already; put_budget sums the rows of a key that returns); ended
-- reservations not owed, and their holds. No budget lock: each statement is atomic, and
-- readers see the fold and the rows it replaced in one commit. -> [commits, reservations, more]
CREATE OR REPLACE FUNCTION qg_trim(p_now bigint, p_clock bigint, p_skew bigint,
  p_cut bigint, p_mstart bigint, p_limit integer, p_folded bigint) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE b budgets; upto bigint; n integer; folded bigint; done bigint := 0;
  room integer := p_limit; gone text[] := '{}';
BEGIN
  PERFORM qg_time(p_clock, p_now, p_skew); -- a now far from the server's dates windows wrongly
  FOR b IN SELECT * FROM budgets ORDER BY key LOOP
    EXIT WHEN room <= 0;
    upto := least(p_cut, CASE b.wkind WHEN 'fixed' THEN b.wstart
      WHEN 'calendar_month' THEN p_mstart WHEN 'rolling_days' THEN p_now - b.wdays * 86400000000
      ELSE b.reported_at END);
    WITH dropped AS (
      DELETE FROM commits WHERE id IN (
        SELECT id FROM commits WHERE budget = b.key AND at < upto AND floor_at < upto
          AND at <> p_folded ORDER BY at LIMIT room)
      RETURNING amount)
    SELECT count(*), COALESCE(sum(amount), 0) INTO n, folded FROM dropped;
    CONTINUE WHEN n = 0;
    UPDATE commits SET amount = amount + folded WHERE budget = b.key AND at = p_folded;
    IF NOT FOUND THEN
      INSERT INTO commits(budget, at, amount, reservation_id, floor_at)
      VALUES (b.key, p_folded, folded, NULL, p_folded);
    END IF;
    done := done + n;
    room := room - n;
  END LOOP;
  IF room > 0 THEN
    -- The condition again on the row deleted: a bind since the select may have made it owed.
    WITH ended AS (
      DELETE FROM reservations WHERE id IN (
        SELECT id FROM reservations WHERE ended_at < p_cut AND state <> 'held' AND NOT (
          state = 'expired' AND (external_id IS NOT NULL OR in_doubt_since IS NOT NULL))
        LIMIT room)
      AND state <> 'held' AND ended_at < p_cut
      AND NOT (state = 'expired' AND (external_id IS NOT NULL OR in_doubt_since IS NOT NULL))
      RETURNING id)
    SELECT COALESCE(array_agg(id), '{}') INTO gone FROM ended;
    DELETE FROM holds WHERE reservation_id = ANY(gone);
    room := room - cardinality(gone);
  END IF;
  RETURN ARRAY[done, cardinality(gone), CASE WHEN room <= 0 THEN 1 ELSE 0 END];
END $$;
