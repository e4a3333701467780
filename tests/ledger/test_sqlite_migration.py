"""Older SQLite ledger files open, upgraded in place. Version 2 to 3: each commit gets its
floor time (its reservation's sent_at, else its commit time), each budget says whether its
report covers sent work (a report stored before does not) and what is inside it. Version 3 to
4: budgets get alert levels (none, for those stored before) and an alert mark."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from quotaguard.ledger import SQLiteLedger
from quotaguard.ledger.sqlite import SCHEMA_VERSION
from tests._support.times import T0

S = 1_000_000  # a second, in microseconds
T = 1773576000000000  # T0 in epoch microseconds

# Version 2 as it shipped, and a file written by it: a bound hold of 8.30 sent at T0, a
# reservation sent at T0 + 25 s and committed (2) at T0 + 30 s, a commit whose reservation is
# gone, and a report of 5 taken at T0 - 90 s.
_V2 = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE budgets(
    key TEXT PRIMARY KEY, unit TEXT NOT NULL, limit_text TEXT NOT NULL, window TEXT NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0, outstanding INTEGER NOT NULL DEFAULT 0,
    reported INTEGER, reported_at INTEGER);
CREATE TABLE reservations(
    id TEXT PRIMARY KEY, idem TEXT UNIQUE, state TEXT NOT NULL, created_at INTEGER NOT NULL,
    lease_expires_at INTEGER NOT NULL, ended_at INTEGER, external_id TEXT,
    charges TEXT NOT NULL, actual TEXT, sent_at INTEGER, in_doubt_since INTEGER);
CREATE INDEX reservations_due ON reservations(lease_expires_at) WHERE state = 'held';
CREATE INDEX reservations_external ON reservations(external_id) WHERE external_id IS NOT NULL;
CREATE INDEX reservations_owed ON reservations(ended_at)
    WHERE state = 'expired' AND (external_id IS NOT NULL OR in_doubt_since IS NOT NULL);
CREATE INDEX reservations_doubt ON reservations(in_doubt_since)
    WHERE state = 'held' AND in_doubt_since IS NOT NULL;
CREATE TABLE holds(
    reservation_id TEXT NOT NULL, budget TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY(reservation_id, budget)) WITHOUT ROWID;
CREATE TABLE commits(
    budget TEXT NOT NULL, at INTEGER NOT NULL, amount INTEGER NOT NULL, reservation_id TEXT);
CREATE INDEX commits_by_time ON commits(budget, at);
INSERT INTO meta VALUES('schema_version', '2');
INSERT INTO budgets VALUES('a', 'USD', '100', '{{"kind": "none"}}', 8300000, 1, 5000000,
    {T - 90 * S});
INSERT INTO reservations VALUES('rsv_held', NULL, 'held', {T}, {T + 3600 * S}, NULL, 'task-1',
    '[["a", "8.30", "USD"]]', NULL, {T}, NULL);
INSERT INTO reservations VALUES('rsv_done', NULL, 'committed', {T}, {T + 3600 * S}, {T + 30 * S},
    'task-2', '[["a", "2", "USD"]]', '[["a", "2", "USD"]]', {T + 25 * S}, NULL);
INSERT INTO holds VALUES('rsv_held', 'a', 8300000);
INSERT INTO commits VALUES('a', {T + 30 * S}, 2000000, 'rsv_done');
INSERT INTO commits VALUES('a', {T + 31 * S}, 1000000, 'rsv_gone');
"""


def read(path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


async def test_a_version_2_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(_V2)
    now = T0 + timedelta(minutes=1)
    async with SQLiteLedger(path, time_source="caller") as ledger:
        assert await ledger.integrity_check() == "ok"
        state = await ledger.state("a", now=now)
        # The report stored by version 2 covers no sent work: every hold and every commit
        # after it counts on top, as it did.
        assert (state.used, state.inside_report, state.covers_sent) == (Decimal("16.3"), 0, False)
        # A covering report read at T0 + 20 s holds the task sent at T0, not the one sent at
        # T0 + 25 s: its commit counts on top, by its floor time, as does the orphan commit
        # (floor time = its commit time, T0 + 31 s).
        await ledger.record_report(
            "a", Decimal(20), at=T0 + timedelta(seconds=20), covers_sent=True
        )
        state = await ledger.state("a", now=now)
        assert (state.used, state.inside_report) == (Decimal(23), Decimal("8.3"))
    assert read(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert read(path, "SELECT reservation_id, floor_at FROM commits ORDER BY at") == [
        ("rsv_done", T + 25 * S),
        ("rsv_gone", T + 31 * S),
    ]
    indexes = {r[0] for r in read(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "commits_by_floor" in indexes
    async with SQLiteLedger(path, time_source="caller") as again:  # migrated once, opens as is
        assert (await again.state("a", now=now)).used == Decimal(23)


# Version 3 as it shipped (reports that cover sent work, floor times), and a file written by
# it: budget 'a' (100 USD) holding 60 USD, with no alert levels (version 3 had none).
_V3 = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE budgets(
    key TEXT PRIMARY KEY, unit TEXT NOT NULL, limit_text TEXT NOT NULL, window TEXT NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0, outstanding INTEGER NOT NULL DEFAULT 0,
    reported INTEGER, reported_at INTEGER,
    covers INTEGER NOT NULL DEFAULT 0, inside INTEGER NOT NULL DEFAULT 0);
CREATE TABLE reservations(
    id TEXT PRIMARY KEY, idem TEXT UNIQUE, state TEXT NOT NULL, created_at INTEGER NOT NULL,
    lease_expires_at INTEGER NOT NULL, ended_at INTEGER, external_id TEXT,
    charges TEXT NOT NULL, actual TEXT, sent_at INTEGER, in_doubt_since INTEGER);
CREATE TABLE holds(
    reservation_id TEXT NOT NULL, budget TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY(reservation_id, budget)) WITHOUT ROWID;
CREATE TABLE commits(
    budget TEXT NOT NULL, at INTEGER NOT NULL, amount INTEGER NOT NULL, reservation_id TEXT,
    floor_at INTEGER);
INSERT INTO meta VALUES('schema_version', '3');
INSERT INTO budgets VALUES('a', 'USD', '100', '{{"kind": "none"}}', 60000000, 1, NULL, NULL,
    0, 0);
INSERT INTO reservations VALUES('rsv_held', NULL, 'held', {T}, {T + 3600 * S}, NULL, NULL,
    '[["a", "60", "USD"]]', NULL, NULL, NULL);
INSERT INTO holds VALUES('rsv_held', 'a', 60000000);
"""


async def test_a_version_3_file_gets_alert_levels_and_keeps_its_alert_mark_across_restarts(
    tmp_path: Path,
) -> None:
    from quotaguard.engine import Budget, Charge, Unit

    path = tmp_path / "v3.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(_V3)
    one = [Charge("a", Decimal(1), Unit.USD)]
    async with SQLiteLedger(path, time_source="caller") as ledger:
        budget = await ledger.get_budget("a")
        assert (budget.limit, budget.alert_levels) == (Decimal(100), ())
        assert (await ledger.reserve(one, now=T0)).alerts == ()  # no levels yet: no alert
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(100), alert_levels=(50, 90)))
        crossed = await ledger.reserve(one, now=T0)
        assert [(a.level, a.used) for a in crossed.alerts] == [(50, Decimal(62))]
    assert read(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert read(path, "SELECT levels, alert_epoch, alert_level FROM budgets") == [("50,90", 0, 50)]
    # The mark was written in the reserve's own transaction: a new process does not report
    # the level again (and the hold, which outstanding still counts, is there with it).
    async with SQLiteLedger(path, time_source="caller") as again:
        assert (await again.reserve(one, now=T0)).alerts == ()
        assert (await again.state("a", now=T0)).reserved == Decimal(63)
