"""The PostgresLedger's schema: its tables, its version and migrations, its functions, and
rows to engine values.

Everything lives in one PostgreSQL schema (the ledger's ``schema=``, default
``quotaguard``), found through the connections' ``search_path``. ``meta`` records the schema
version and a digest of the functions' source: a newer version is refused, an older one
migrated, and the functions (``functions.sql``) replaced when their source changed, all in
one transaction under an advisory lock, so processes starting together do it once.
Amounts are integer micro-units; instants and charge lists are written as every ledger
writes them (:mod:`quotaguard.ledger.encoding`).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from quotaguard.engine.amounts import Unit, to_micro
from quotaguard.engine.model import Budget
from quotaguard.engine.rules import Usage
from quotaguard.engine.windows import (
    CalendarMonth,
    FixedWindow,
    RollingDays,
    window_from_dict,
    window_to_dict,
)
from quotaguard.errors import BudgetUnavailable, InvalidInput
from quotaguard.ledger.encoding import epoch_us, from_epoch_us

__all__ = [
    "FUNCTIONS",
    "SCHEMA_VERSION",
    "budget_args",
    "budget_of",
    "check_schema_name",
    "init_statements",
    "usage_of",
]

SCHEMA_VERSION = 2

_TABLES = """
CREATE TABLE IF NOT EXISTS budgets(
    key text PRIMARY KEY, unit text NOT NULL, limit_text text NOT NULL,
    limit_micro bigint NOT NULL, wkind text NOT NULL, wstart bigint, wend bigint, wdays bigint,
    window_json text NOT NULL, reserved bigint NOT NULL DEFAULT 0,
    outstanding bigint NOT NULL DEFAULT 0,
    total bigint NOT NULL DEFAULT 0,  -- every commit, for unwindowed budgets (O(1) reads)
    reported bigint, reported_at bigint,
    covers boolean NOT NULL DEFAULT false,  -- the report holds work sent before it (Braket)
    inside bigint NOT NULL DEFAULT 0);  -- held amounts sent before a covering report
CREATE TABLE IF NOT EXISTS reservations(
    id text PRIMARY KEY, idem text UNIQUE, fp text, state text NOT NULL,
    created_at bigint NOT NULL, lease_expires_at bigint NOT NULL, ended_at bigint,
    external_id text, charges text NOT NULL, actual text, sent_at bigint,
    in_doubt_since bigint);
CREATE INDEX IF NOT EXISTS reservations_due ON reservations(lease_expires_at)
    WHERE state = 'held';
CREATE INDEX IF NOT EXISTS reservations_external ON reservations(external_id, created_at)
    WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS reservations_owed ON reservations(ended_at, id)
    WHERE state = 'expired' AND (external_id IS NOT NULL OR in_doubt_since IS NOT NULL);
CREATE INDEX IF NOT EXISTS reservations_doubt ON reservations(in_doubt_since)
    WHERE state = 'held' AND in_doubt_since IS NOT NULL;
-- One row per reservation and budget, kept after it ends: what it held, what a default
-- commit records.
CREATE TABLE IF NOT EXISTS holds(
    reservation_id text NOT NULL, budget text NOT NULL, unit text NOT NULL,
    amount bigint NOT NULL, PRIMARY KEY(reservation_id, budget));
CREATE TABLE IF NOT EXISTS commits(
    id bigserial PRIMARY KEY, budget text NOT NULL, at bigint NOT NULL, amount bigint NOT NULL,
    reservation_id text,
    floor_at bigint NOT NULL);  -- the reservation's sent_at, else `at`: "since" a covering report
CREATE INDEX IF NOT EXISTS commits_by_time ON commits(budget, at) INCLUDE (amount);
CREATE INDEX IF NOT EXISTS commits_by_floor ON commits(budget, floor_at) INCLUDE (amount);
"""

#: What turns a schema of version ``n`` into ``n + 1``, at index ``n - 1``.
_MIGRATIONS: tuple[str, ...] = (
    # 1 -> 2: whether the stored report covers sent work (Braket) and the held amount inside
    # it, and each commit's floor time (its reservation's sent_at, else its own time), by which
    # a covering report's "since" is summed. Reports stored before cover nothing (as then).
    # The functions whose arguments changed go: a stale overload would make calls ambiguous.
    """
    ALTER TABLE budgets ADD COLUMN IF NOT EXISTS covers boolean NOT NULL DEFAULT false,
        ADD COLUMN IF NOT EXISTS inside bigint NOT NULL DEFAULT 0;
    ALTER TABLE commits ADD COLUMN IF NOT EXISTS floor_at bigint;
    UPDATE commits c SET floor_at = COALESCE(
        (SELECT sent_at FROM reservations WHERE id = c.reservation_id), c.at);
    ALTER TABLE commits ALTER COLUMN floor_at SET NOT NULL;
    DROP FUNCTION IF EXISTS qg_sum(text, bigint, bigint);
    DROP FUNCTION IF EXISTS qg_record_report(text, bigint, bigint, bigint, boolean, bigint);
    """,
)
assert len(_MIGRATIONS) == SCHEMA_VERSION - 1

FUNCTIONS = (
    importlib.resources.files("quotaguard.ledger.postgres")
    .joinpath("functions.sql")
    .read_text(encoding="utf-8")
)
_DIGEST = hashlib.sha256((_TABLES + FUNCTIONS).encode()).hexdigest()[:16]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema_name(schema: object) -> str:
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidInput(
            "schema", "must be 1-63 lower-case letters, digits or '_', not starting with a digit"
        )
    return schema


def init_statements(schema: str, found: Mapping[str, str]) -> list[str]:
    """What brings the schema whose ``meta`` holds ``found`` to this version (empty: nothing).

    Run in one transaction after ``pg_advisory_xact_lock``; ``found`` is read in it.
    """
    version = int(found.get("schema_version", SCHEMA_VERSION))
    if version > SCHEMA_VERSION:
        raise BudgetUnavailable(
            f"PostgreSQL schema {schema!r} has ledger schema {version}, newer than this "
            f"quotaguard ({SCHEMA_VERSION}); upgrade quotaguard"
        )
    if version == SCHEMA_VERSION and found.get("digest") == _DIGEST:
        return []
    return [
        *_MIGRATIONS[version - 1 :],
        _TABLES,
        FUNCTIONS,
        f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'), "
        f"('digest', '{_DIGEST}') ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ]


# -- values to rows and back ---------------------------------------------------------------


def budget_args(budget: Budget) -> tuple[object, ...]:
    """qg_put_budget's arguments after the key: unit, limit, window kind and bounds."""
    window = budget.window
    start = end = days = None
    if isinstance(window, FixedWindow):
        start, end = epoch_us(window.start), epoch_us(window.end)
    elif isinstance(window, RollingDays):
        days = window.days
    return (
        budget.unit.value,
        str(budget.limit),
        to_micro(budget.limit, round_up=False),
        window.kind,
        start,
        end,
        days,
        json.dumps(window_to_dict(window)),
    )


_BUDGETS: dict[tuple[str, str, str, str], Budget] = {}


def budget_of(key: str, unit: str, limit_text: str, window_json: str) -> Budget:
    # Budgets are immutable values and rows rarely change: parse each distinct one once.
    cache_key = (key, unit, limit_text, window_json)
    budget = _BUDGETS.get(cache_key)
    if budget is None:
        budget = Budget(
            key, Unit(unit), Decimal(limit_text), window_from_dict(json.loads(window_json))
        )
        if len(_BUDGETS) >= 4096:
            _BUDGETS.clear()  # bounded; refilled from the rows in use
        _BUDGETS[cache_key] = budget
    return budget


def usage_of(raw: list[Any]) -> Usage:
    """qg_usage()'s counters: [committed, reserved, reported, since, outstanding, at,
    inside, covers]."""
    committed, reserved, reported, since, outstanding, at, inside, covers = raw
    return Usage(
        committed,
        reserved,
        reported,
        since,
        outstanding,
        None if at is None else from_epoch_us(at),
        inside=inside,
        covers_sent=covers,
    )


MONTH = CalendarMonth()
