"""Trimming never changes what a budget counts: a hypothesis-drawn run on every backend.

Two ledgers of one backend take the same random operations (spends, reserves, commits
above and below the hold, releases, binds, doubt, reports lagging up to two hours, expiry, time
moving on); one of them is also trimmed at random points with a random retention. After
every step both must show the same state for every budget (``used``, ``remaining`` and
every counter) now, a day and forty days on, the same listings, and the same
``committed_between`` over every range inside the latest trim's retention. An operation on
a reservation the trimmed ledger forgot (ReservationNotFound there) is skipped on both:
trimming forgets ended records on purpose. No idempotency keys: a key replays only while
its reservation is kept (test_trim.py tests that).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from quotaguard.engine import Budget, CalendarMonth, FixedWindow, NoWindow, RollingDays, Unit
from quotaguard.errors import QuotaGuardError, ReservationNotFound
from quotaguard.ledger import Ledger
from tests._support.ledger import FACTORIES, ledger_params, usd
from tests._support.times import T0

pytestmark = [pytest.mark.slow]

BUDGETS = (
    Budget("a", Unit.USD, Decimal(200), NoWindow()),
    Budget("b", Unit.USD, Decimal(100), CalendarMonth()),
    Budget("c", Unit.USD, Decimal(60), RollingDays(1)),
    Budget("d", Unit.USD, Decimal(100), FixedWindow(T0, T0 + timedelta(days=3))),
)
_amount = st.integers(0, 2000).map(lambda n: Decimal(n).scaleb(-2))  # $0 .. $20
_charges = st.lists(st.tuples(st.sampled_from("abcd"), _amount), min_size=1, max_size=3)
_pick = st.integers(0, 50)
_spend = st.tuples(st.just("spend"), _charges)  # reserve and commit at once: many commits
_ops = st.one_of(
    _spend,
    _spend,
    st.tuples(st.just("reserve"), _charges, st.sampled_from([60, 3600])),
    st.tuples(st.just("commit"), _pick, st.none() | _amount),
    st.tuples(st.just("release"), _pick),
    st.tuples(st.just("bind"), _pick),
    st.tuples(st.just("doubt"), _pick),
    # Reports lag at most two hours: less than the shortest retention drawn below.
    st.tuples(st.just("report"), st.sampled_from("abcd"), _amount, st.integers(-7200, 0)),
    st.tuples(st.just("later"), st.sampled_from([3600, 7200, 86400, 86400 * 4, 86400 * 20])),
    st.tuples(st.just("expire")),
    st.tuples(st.just("trim"), st.sampled_from([7200, 86400, 86400 * 3])),
)


class Run:
    """One ledger's side of the run: its reservation ids in the order they were made."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.ids: list[str] = []

    def pick(self, n: int) -> str:
        return self.ids[n % len(self.ids)] if self.ids else "rsv_none"

    async def step(self, op: tuple[Any, ...], now: datetime) -> object:
        ledger, kind = self.ledger, op[0]
        if kind in ("reserve", "spend"):
            lease = timedelta(seconds=op[2] if kind == "reserve" else 60)
            d = await ledger.reserve([usd(b, a) for b, a in op[1]], now=now, lease=lease)
            if d.reservation is None:
                return d.admitted
            self.ids.append(d.reservation.id)
            if kind == "spend":
                return (await ledger.commit(d.reservation.id, now=now)).state
            return d.admitted
        if kind == "commit":
            rid = self.pick(op[1])
            actual = None
            if op[2] is not None:
                actual = [usd((await ledger.get(rid)).charges[0].budget, op[2])]
            return (await ledger.commit(rid, actual, now=now)).state
        if kind == "release":
            return (await ledger.release(self.pick(op[1]), now=now)).state
        if kind == "bind":
            rid = self.pick(op[1])
            return (await ledger.bind(rid, f"job-{rid}", sent_at=now)).state
        if kind == "doubt":
            return (await ledger.mark_in_doubt(self.pick(op[1]), now=now)).state
        if kind == "report":
            at = now + timedelta(seconds=op[3])
            return await ledger.record_report(op[1], op[2], at=at, now=now)
        return await ledger.expire(now=now)

    async def seen(self, now: datetime, since: datetime) -> tuple[Any, ...]:
        ledger = self.ledger
        states = [
            await ledger.state(b.key, now=at)
            for b in BUDGETS
            for at in (now, now + timedelta(days=1), now + timedelta(days=40))
        ]
        spans = [(since, now + timedelta(seconds=1)), (since + (now - since) / 2, now)]
        between = [await ledger.committed_between(b.key, s, e) for b in BUDGETS for s, e in spans]
        names = {rid: i for i, rid in enumerate(self.ids)}
        listed = [
            sorted(names.get(r.id, -1) for r in await listing())
            for listing in (ledger.outstanding, ledger.in_doubt, ledger.lapsed)
        ]
        return states, between, listed


async def _answer(run: Run, op: tuple[Any, ...], now: datetime) -> object:
    try:
        return await run.step(op, now)
    except ReservationNotFound:
        raise
    except QuotaGuardError as exc:
        return type(exc).__name__


async def _run(name: str, ops: list[tuple[Any, ...]], request: Any, tmp: Path) -> None:
    async with AsyncExitStack() as stack:
        plain = Run(await stack.enter_async_context(FACTORIES[name](request, tmp)))
        trimmed = Run(await stack.enter_async_context(FACTORIES[name](request, tmp)))
        for run in (plain, trimmed):
            for budget in BUDGETS:
                await run.ledger.put_budget(budget)
        now, since = T0, T0 - timedelta(days=1000)
        for i, op in enumerate(ops):
            if op[0] == "later":
                now += timedelta(seconds=op[1])
            elif op[0] == "trim":
                await trimmed.ledger.trim(now=now, keep=timedelta(seconds=op[1]))
                since = max(since, now - timedelta(seconds=op[1]))
            else:
                try:
                    answer = await _answer(trimmed, op, now)
                except ReservationNotFound:
                    continue  # forgotten on purpose: the plain ledger skips it too
                try:
                    assert await _answer(plain, op, now) == answer, f"step {i} {op}"
                except ReservationNotFound as exc:
                    raise AssertionError(f"step {i} {op}: the plain ledger lost one") from exc
            assert await trimmed.seen(now, since) == await plain.seen(now, since), f"step {i} {op}"


@pytest.mark.parametrize("name", ledger_params())
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_ops, min_size=4, max_size=24))
# The cases each part of the rule is for, always run: a rolling window's start, and the
# commits "since" an unwindowed budget's report.
@example(ops=[("spend", [("c", Decimal(5))]), ("later", 7200), ("later", 7200), ("trim", 7200)])
@example(
    ops=[
        ("report", "a", Decimal(20), 0),
        ("later", 3600),
        ("spend", [("a", Decimal(5))]),
        ("later", 86400),
        ("trim", 7200),
    ]
)
def test_trimming_never_changes_what_any_budget_counts(
    name: str, ops: list[tuple[Any, ...]], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    asyncio.run(_run(name, ops, request, tmp_path))
