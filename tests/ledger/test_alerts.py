"""Soft thresholds on every backend: a reserve reports each alert level it crosses, once per
window instance (a rolling window re-arms), in the same atomic step as its hold."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from quotaguard.engine import Alert, Budget, CalendarMonth, Charge, Decision, RollingDays, Unit
from quotaguard.ledger import Ledger
from tests._support.ledger import drop_schema, usd
from tests._support.processes import run_processes
from tests._support.times import T0, utc
from tests._support.workers import KEY, alert_worker, open_ledger


def levels(decision: Decision) -> list[tuple[str, int, Decimal]]:
    return [(a.budget, a.level, a.used) for a in decision.alerts]


async def test_a_reserve_reports_each_level_its_hold_crosses_once(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(100), alert_levels=(50, 80, 95)))
    assert (await ledger.get_budget("a")).alert_levels == (50, 80, 95)
    first = await ledger.reserve([usd("a", 49)], now=T0)
    assert first.admitted and first.alerts == ()
    second = await ledger.reserve([usd("a", 1)], now=T0)  # exactly 50 %: met
    assert second.alerts == (Alert("a", 50, Decimal(50), Decimal(100), Unit.USD),)
    jump = await ledger.reserve([usd("a", "45.5")], now=T0)  # 95.5 %: two levels at once
    assert levels(jump) == [("a", 80, Decimal("95.5")), ("a", 95, Decimal("95.5"))]
    assert (await ledger.reserve([usd("a", "0.5")], now=T0)).alerts == ()


async def test_a_level_falls_and_rises_again_in_the_same_month_without_a_second_alert(
    ledger: Ledger,
) -> None:
    await ledger.put_budget(Budget("m", Unit.USD, Decimal(10), CalendarMonth(), (80,)))
    held = await ledger.reserve([usd("m", 9)], now=T0)
    assert levels(held) == [("m", 80, Decimal(9))]
    assert held.reservation is not None
    await ledger.release(held.reservation.id, now=T0)
    assert (await ledger.reserve([usd("m", 9)], now=T0)).alerts == ()
    # A new calendar month is a new window instance: the level is reported again.
    next_month = utc(2026, 4, 1, 0, 0)
    again = await ledger.reserve([usd("m", 9)], now=next_month)
    assert again.admitted
    assert levels(again) == [("m", 80, Decimal(9))]


async def test_a_rolling_window_re_arms_a_level_once_its_spend_ages_out(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("r", Unit.USD, Decimal(10), RollingDays(1), (50,)))
    held = await ledger.reserve([usd("r", 6)], now=T0)
    assert levels(held) == [("r", 50, Decimal(6))]
    assert held.reservation is not None
    await ledger.commit(held.reservation.id, now=T0)
    later = T0 + timedelta(hours=12)  # the commit still counts: 6 + 1 is still over 50 %
    assert (await ledger.reserve([usd("r", 1)], now=later)).alerts == ()
    # Two days on, the commit has aged out and the hold of 1 has lapsed (a 15-minute
    # lease): usage before the next hold is 0, under the level, which re-arms it.
    aged = T0 + timedelta(days=2)
    assert (await ledger.reserve([usd("r", 4)], now=aged)).alerts == ()
    assert levels(await ledger.reserve([usd("r", 1)], now=aged)) == [("r", 50, Decimal(5))]


async def test_putting_the_same_budget_keeps_the_mark_and_a_new_limit_re_arms_it(
    ledger: Ledger,
) -> None:
    budget = Budget("p", Unit.USD, Decimal(10), alert_levels=(50,))
    await ledger.put_budget(budget)
    assert levels(await ledger.reserve([usd("p", 6)], now=T0)) == [("p", 50, Decimal(6))]
    await ledger.put_budget(budget)  # a provider refresh puts the same budget again
    assert (await ledger.reserve([usd("p", 1)], now=T0)).alerts == ()
    await ledger.put_budget(Budget("p", Unit.USD, Decimal(20), alert_levels=(50,)))
    assert (await ledger.reserve([usd("p", 1)], now=T0)).alerts == ()  # 8 of 20
    assert levels(await ledger.reserve([usd("p", 2)], now=T0)) == [("p", 50, Decimal(10))]
    # New levels re-arm too; no levels at all report nothing.
    await ledger.put_budget(Budget("p", Unit.USD, Decimal(20), alert_levels=(25, 50)))
    assert levels(await ledger.reserve([usd("p", 1)], now=T0)) == [
        ("p", 25, Decimal(11)),
        ("p", 50, Decimal(11)),
    ]
    await ledger.put_budget(Budget("p", Unit.USD, Decimal(20)))
    assert (await ledger.get_budget("p")).alert_levels == ()
    assert (await ledger.reserve([usd("p", 8)], now=T0)).alerts == ()


async def test_a_rejected_or_replayed_reserve_reports_nothing_and_moves_no_mark(
    ledger: Ledger,
) -> None:
    await ledger.put_budget(Budget("x", Unit.USD, Decimal(10), alert_levels=(50, 90)))
    assert (await ledger.reserve([usd("x", 11)], now=T0)).alerts == ()  # refused
    first = await ledger.reserve([usd("x", 5)], now=T0, idempotency_key="k")
    assert levels(first) == [("x", 50, Decimal(5))]
    replay = await ledger.reserve([usd("x", 5)], now=T0, idempotency_key="k")
    assert replay.replayed and replay.alerts == ()
    assert levels(await ledger.reserve([usd("x", 4)], now=T0)) == [("x", 90, Decimal(9))]


async def test_one_reserve_on_two_budgets_reports_each_budget_s_levels(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(10), alert_levels=(50,)))
    await ledger.put_budget(Budget("b", Unit.USD, Decimal(100), alert_levels=(50,)))
    await ledger.put_budget(Budget("c", Unit.USD, Decimal(10)))  # no levels
    d = await ledger.reserve([usd("c", 9), usd("b", 60), usd("a", 5)], now=T0)
    # By budget key, whatever order the charges and the store's own came in.
    assert levels(d) == [("a", 50, Decimal(5)), ("b", 50, Decimal(60))]


async def test_usage_a_provider_report_lifts_is_reported_by_the_next_reserve(
    ledger: Ledger,
) -> None:
    await ledger.put_budget(Budget("ibm:x", Unit.SECONDS, Decimal(600), alert_levels=(80, 95)))
    await ledger.record_report("ibm:x", Decimal(500), at=T0, now=T0)
    seconds = Charge("ibm:x", Decimal(10), Unit.SECONDS)
    d = await ledger.reserve([seconds], now=T0 + timedelta(seconds=1))
    assert d.admitted
    assert [(a.level, a.used, a.unit) for a in d.alerts] == [(80, Decimal(510), Unit.SECONDS)]


# -- fleet-wide: of many concurrent reservers exactly one sees each crossing ---------------


async def test_of_many_concurrent_reservers_exactly_one_sees_each_crossing(
    ledger: Ledger,
) -> None:
    await ledger.put_budget(Budget("fleet", Unit.USD, Decimal(100), alert_levels=(50, 80, 95)))
    decisions = await asyncio.gather(
        *(ledger.reserve([usd("fleet", 1)], now=T0) for _ in range(150))
    )
    assert sum(d.admitted for d in decisions) == 100
    seen = [a for d in decisions for a in d.alerts]
    assert sorted(a.level for a in seen) == [50, 80, 95]
    # Each was seen by the reserve whose hold reached it: used is exactly the level.
    assert sorted(a.used for a in seen) == [Decimal(50), Decimal(80), Decimal(95)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
async def test_of_a_fleet_of_processes_exactly_one_sees_each_crossing(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(f"{kind}_server")
    where = server.url if kind == "redis" else server.dsn
    namespace = f"alerts_{uuid.uuid4().hex[:8]}"
    try:
        async with open_ledger(kind, where, namespace) as ledger:
            await ledger.put_budget(Budget(KEY, Unit.USD, Decimal(200), alert_levels=(50, 80, 95)))
            # 4 processes x 60 reserves of 1 USD: 200 admitted, crossing 100, 160 and 190.
            per_worker = await run_processes(
                alert_worker, [(kind, where, namespace, 60)] * 4, timeout=120
            )
            assert sorted(level for seen in per_worker for level in seen) == [50, 80, 95]
            assert (await ledger.state(KEY, now=T0)).reserved == Decimal(200)
    finally:
        if kind == "postgres":
            await drop_schema(where, namespace)
        else:
            await _drop_namespace(where, namespace)


async def _drop_namespace(url: str, namespace: str) -> None:
    import redis.asyncio as aioredis

    async with aioredis.Redis.from_url(url) as client:
        keys = [k async for k in client.scan_iter(match=f"{{{namespace}}}:*", count=1000)]
        if keys:
            await client.delete(*keys)


@pytest.mark.redis
async def test_a_redis_budget_hash_written_before_alert_levels_reads_as_having_none(
    rl: Any, client: Any
) -> None:
    # Redis keeps no schema version: a hash without the alert fields is a budget without
    # levels, and putting levels on it later arms them.
    await rl.put_budget(Budget("a", Unit.USD, Decimal(100), alert_levels=(50,)))
    await client.hdel(f"{{{rl.namespace}}}:b:a", "levels", "alerts", "alert_epoch", "alert_level")
    assert (await rl.get_budget("a")).alert_levels == ()
    assert (await rl.reserve([usd("a", 60)], now=T0)).alerts == ()
    await rl.put_budget(Budget("a", Unit.USD, Decimal(100), alert_levels=(50,)))
    assert levels(await rl.reserve([usd("a", 1)], now=T0)) == [("a", 50, Decimal(61))]
