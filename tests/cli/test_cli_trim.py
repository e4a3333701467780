"""``quotaguard ledger trim``: forgets what is old, keeps what every budget counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quotaguard import Budget, Charge, SQLiteLedger, Unit
from quotaguard.errors import ReservationNotFound
from tests._support.cli import run


async def test_trim_forgets_old_records_and_keeps_used(base_env: dict[str, str]) -> None:
    path = base_env["QUOTAGUARD_LEDGER_PATH"]
    now = datetime.now(UTC)
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(Budget("team:x", Unit.USD, Decimal(100)))
        ids = []
        for days in (30, 3):
            at = now - timedelta(days=days)
            held = (
                await ledger.reserve([Charge("team:x", Decimal(2), Unit.USD)], now=at)
            ).reservation
            assert held is not None
            await ledger.commit(held.id, now=at)
            ids.append(held.id)
    code, out, err = await run("ledger", "trim", "--keep-days", "7", "--json", env=base_env)
    assert code == 0, err
    assert json.loads(out) == {"commits": 1, "reservations": 1, "keep_days": 7}
    async with SQLiteLedger(path, time_source="caller") as ledger:
        try:
            await ledger.get(ids[0])
            raise AssertionError("the 30-day-old reservation is still there")
        except ReservationNotFound:
            pass
        assert (await ledger.get(ids[1])).id == ids[1]
        assert (await ledger.state("team:x", now=now)).used == Decimal(4)
    code, out, _ = await run("ledger", "trim", env=base_env)
    assert code == 0
    assert "trimmed 0 commits and 0 ended reservations older than 400 days" in out


async def test_a_negative_retention_is_a_usage_error(base_env: dict[str, str]) -> None:
    code, _, err = await run("ledger", "trim", "--keep-days", "-1", env=base_env)
    assert code == 2
    assert "--keep-days" in err and "-1" in err
