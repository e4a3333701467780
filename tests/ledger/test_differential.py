"""Differential: every backend, fed the same random sequence of operations, answers the same.

Memory, SQLite, Redis and PostgreSQL each run one hypothesis-drawn sequence (reserves with
and without keys, commits above and below the hold, releases, renewals, binds, doubt,
reports, expiry, time moving on, trims); what a caller sees after each step (decisions,
violations, reservations, errors, budget states, listings) must be identical across them.
Reservation ids differ by backend, so each is named by the order it was made in.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quotaguard.engine import (
    Budget,
    CalendarMonth,
    Decision,
    NoWindow,
    Reservation,
    RollingDays,
    Unit,
)
from quotaguard.errors import QuotaGuardError
from quotaguard.ledger import Ledger
from tests._support.ledger import FACTORIES, usd
from tests._support.times import T0

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

BUDGETS = (
    Budget("a", Unit.USD, Decimal(50), NoWindow()),
    Budget("b", Unit.USD, Decimal(30), CalendarMonth()),
    Budget("c", Unit.USD, Decimal(20), RollingDays(1)),
)
_amount = st.integers(0, 4000).map(lambda n: Decimal(n).scaleb(-2))  # $0 .. $40
_charges = st.lists(st.tuples(st.sampled_from("abc"), _amount), min_size=1, max_size=3)
_pick = st.integers(0, 50)  # the n-th reservation made (modulo how many there are)
_ops = st.one_of(
    st.tuples(
        st.just("reserve"),
        _charges,
        st.sampled_from([None, "k1", "k2"]),
        st.sampled_from([60, 3600]),
    ),
    st.tuples(st.just("commit"), _pick, st.none() | _amount),
    st.tuples(st.just("release"), _pick),
    st.tuples(st.just("renew"), _pick),
    st.tuples(st.just("bind"), _pick),
    st.tuples(st.just("doubt"), _pick),
    st.tuples(st.just("report"), st.sampled_from("abc"), _amount, st.integers(-7200, 0)),
    st.tuples(st.just("later"), st.sampled_from([30, 600, 7200, 86400 * 2])),
    st.tuples(st.just("expire")),
    st.tuples(st.just("trim"), st.sampled_from([0, 3600, 86400])),
)


def _reservation(r: Reservation, names: dict[str, int]) -> tuple[Any, ...]:
    return (
        names.get(r.id, -1),
        r.state.value,
        r.charges,
        r.actual,
        r.created_at,
        r.lease_expires_at,
        r.ended_at,
        r.idempotency_key,
        r.external_id,
        r.sent_at,
        r.in_doubt_since,
    )


def _decision(d: Decision, names: dict[str, int]) -> tuple[Any, ...]:
    if d.reservation is not None and d.reservation.id not in names:
        names[d.reservation.id] = len(names)
    violations = tuple(
        (v.rule, v.budget, v.requested, v.remaining, v.message) for v in d.violations
    )
    held = None if d.reservation is None else _reservation(d.reservation, names)
    return (d.admitted, d.replayed, violations, held)


async def _step(ledger: Ledger, op: tuple[Any, ...], state: dict[str, Any]) -> Any:
    names: dict[str, int] = state["names"]
    ids = list(names)
    now = state["now"]

    def pick(n: int) -> str:
        return ids[n % len(ids)] if ids else "rsv_none"

    kind = op[0]
    if kind == "reserve":
        charges = [usd(b, a) for b, a in op[1]]
        d = await ledger.reserve(
            charges, now=now, lease=timedelta(seconds=op[3]), idempotency_key=op[2]
        )
        return _decision(d, names)
    if kind == "commit":
        rid = pick(op[1])
        actual = None
        if op[2] is not None and ids:
            held = await ledger.get(rid)
            actual = [usd(held.charges[0].budget, op[2])] if held.charges else None
        return _reservation(await ledger.commit(rid, actual, now=now), names)
    if kind == "release":
        return _reservation(await ledger.release(pick(op[1]), now=now), names)
    if kind == "renew":
        return _reservation(
            await ledger.renew(pick(op[1]), lease=timedelta(hours=1), now=now), names
        )
    if kind == "bind":
        rid = pick(op[1])
        return _reservation(await ledger.bind(rid, f"job-{names.get(rid)}", sent_at=now), names)
    if kind == "doubt":
        return _reservation(await ledger.mark_in_doubt(pick(op[1]), now=now), names)
    if kind == "report":
        at = now + timedelta(seconds=op[3])
        return await ledger.record_report(op[1], op[2], at=at, now=now)
    if kind == "trim":
        # The reservations forgotten agree; commit records may not (Redis stores no $0 one).
        return (await ledger.trim(now=now, keep=timedelta(seconds=op[1]))).reservations
    if kind == "later":
        state["now"] = now + timedelta(seconds=op[1])
        return None
    return await ledger.expire(now=now)


async def _observe(ledger: Ledger, state: dict[str, Any]) -> tuple[Any, ...]:
    names, now = state["names"], state["now"]
    states = tuple([await ledger.state(b.key, now=now) for b in BUDGETS])
    listed = tuple(
        [
            tuple(sorted(_reservation(r, names) for r in await listing()))
            for listing in (ledger.outstanding, ledger.in_doubt, ledger.lapsed)
        ]
    )
    # The audit read, in pages of 2 (pages are read as the ledger stands between them),
    # whole and filtered by one budget and by a span.
    audit = tuple(
        [
            tuple(sorted([_reservation(r, names) async for r in read]))
            for read in (
                ledger.reservations(page_size=2),
                ledger.reservations(budgets=["b"], since=now - timedelta(seconds=600)),
            )
        ]
    )
    return states, listed, audit


async def _run(ops: list[tuple[Any, ...]], request: pytest.FixtureRequest, tmp: Path) -> None:
    async with AsyncExitStack() as stack:
        ledgers = {
            name: await stack.enter_async_context(factory(request, tmp))
            for name, factory in FACTORIES.items()
        }
        states = {name: {"names": {}, "now": T0} for name in ledgers}
        for ledger in ledgers.values():
            for budget in BUDGETS:
                await ledger.put_budget(budget)
        for i, op in enumerate(ops):
            seen: dict[str, Any] = {}
            for name, ledger in ledgers.items():
                try:
                    answer: Any = await _step(ledger, op, states[name])
                except QuotaGuardError as exc:
                    text = str(exc)
                    for rid, n in states[name]["names"].items():  # ids differ by backend
                        text = text.replace(rid, f"#{n}")
                    answer = (type(exc).__name__, getattr(exc, "field", None), text)
                seen[name] = (answer, await _observe(ledger, states[name]))
            first = seen["memory"]
            for name, got in seen.items():
                assert got == first, f"step {i} {op}: {name} differs from memory"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_ops, min_size=1, max_size=16))
def test_every_backend_answers_every_sequence_alike(
    ops: list[tuple[Any, ...]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_server: Any,
    postgres_server: Any,
) -> None:
    asyncio.run(_run(ops, request, tmp_path))
