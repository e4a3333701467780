"""Bad input: a clear error naming the field, and the ledger exactly as it was (every backend)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

from quotaguard.engine import Budget, Charge, Unit
from quotaguard.errors import InvalidInput, ReservationNotFound, UnknownBudget
from quotaguard.ledger import Ledger
from tests._support.ledger import snapshot, usd
from tests._support.times import T0

NAIVE = datetime(2026, 3, 15, 12, 0)  # deliberately naive
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


@attrs.frozen
class World:
    held: str
    committed: str


Call = Callable[[Ledger, World], Awaitable[Any]]


async def populate(ledger: Ledger) -> World:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(100)))
    await ledger.put_budget(Budget("s", Unit.SECONDS, Decimal(600)))
    held = await ledger.reserve([usd("a", "10")], now=T0, idempotency_key="k")
    done = await ledger.reserve([usd("a", "5")], now=T0)
    assert held.reservation is not None and done.reservation is not None
    await ledger.commit(done.reservation.id, now=T0)
    await ledger.record_report("a", Decimal(7), at=T0)
    return World(held.reservation.id, done.reservation.id)


def secs(budget: str, amount: int) -> Charge:
    return Charge(budget, Decimal(amount), Unit.SECONDS)


def reserve_with_key(key: object) -> Call:
    return lambda lg, w: lg.reserve([usd("a", 1)], now=T0, idempotency_key=key)  # type: ignore[arg-type]


def report_used(used: object) -> Call:
    return lambda lg, w: lg.record_report("a", used, at=T0)


CASES: list[tuple[str, Call, type[Exception], str | None]] = [
    # reserve
    ("reserve-empty", lambda lg, w: lg.reserve([], now=T0), InvalidInput, "charges"),
    (
        "reserve-not-a-charge",
        lambda lg, w: lg.reserve([usd("a", 1), ("a", 1, "USD")], now=T0),  # type: ignore[list-item]
        InvalidInput,
        "charges[1]",
    ),
    (
        "reserve-unit-mismatch",
        lambda lg, w: lg.reserve([usd("a", 1), secs("a", 1)], now=T0),
        InvalidInput,
        "charges[1].unit",
    ),
    (
        "reserve-unknown-budget",
        lambda lg, w: lg.reserve([usd("a", 1), usd("nope", 1)], now=T0),
        UnknownBudget,
        "charges[1].budget",
    ),
    (
        "reserve-lease-zero",
        lambda lg, w: lg.reserve([usd("a", 1)], now=T0, lease=timedelta(0)),
        InvalidInput,
        "lease",
    ),
    (
        "reserve-lease-negative",
        lambda lg, w: lg.reserve([usd("a", 1)], now=T0, lease=timedelta(seconds=-1)),
        InvalidInput,
        "lease",
    ),
    (
        "reserve-lease-int",
        lambda lg, w: lg.reserve([usd("a", 1)], now=T0, lease=30),  # type: ignore[arg-type]
        InvalidInput,
        "lease",
    ),
    (
        "reserve-lease-too-long",
        lambda lg, w: lg.reserve([usd("a", 1)], now=T0, lease=timedelta(days=367)),
        InvalidInput,
        "lease",
    ),
    ("reserve-none", lambda lg, w: lg.reserve(None, now=T0), InvalidInput, "charges"),  # type: ignore[arg-type]
    (
        "reserve-a-single-charge",
        lambda lg, w: lg.reserve(usd("a", 1), now=T0),  # type: ignore[arg-type]
        InvalidInput,
        "charges",
    ),
    (
        "reserve-a-str",
        lambda lg, w: lg.reserve("a", now=T0),  # type: ignore[arg-type]
        InvalidInput,
        "charges",
    ),
    ("reserve-naive-now", lambda lg, w: lg.reserve([usd("a", 1)], now=NAIVE), InvalidInput, "now"),
    (
        "reserve-str-now",
        lambda lg, w: lg.reserve([usd("a", 1)], now="2026-03-15"),  # type: ignore[arg-type]
        InvalidInput,
        "now",
    ),
    *[
        (
            f"reserve-bad-key-{i}",
            reserve_with_key(key),
            InvalidInput,
            "idempotency_key",
        )
        for i, key in enumerate(["", "x" * 257, "line\nbreak", 42])
    ],
    (
        "reserve-key-reused-for-other-charges",
        lambda lg, w: lg.reserve([usd("a", 11)], now=T0, idempotency_key="k"),
        InvalidInput,
        "idempotency_key",
    ),
    # commit
    (
        "commit-unknown-id",
        lambda lg, w: lg.commit("rsv_nope", now=T0),
        ReservationNotFound,
        None,
    ),
    (
        "commit-none-id",
        lambda lg, w: lg.commit(None, now=T0),  # type: ignore[arg-type]
        ReservationNotFound,
        None,
    ),
    (
        "commit-actual-other-budget",
        lambda lg, w: lg.commit(w.held, [usd("a", 1), secs("s", 1)], now=T0),
        InvalidInput,
        "actual[1].budget",
    ),
    (
        "commit-actual-unit",
        lambda lg, w: lg.commit(w.held, [secs("a", 1)], now=T0),
        InvalidInput,
        "actual[0].unit",
    ),
    (
        "commit-actual-not-a-charge",
        lambda lg, w: lg.commit(w.held, [Decimal(1)], now=T0),  # type: ignore[list-item]
        InvalidInput,
        "actual[0]",
    ),
    (
        "commit-again-with-bad-actual",
        lambda lg, w: lg.commit(w.committed, [secs("s", 1)], now=T0),
        InvalidInput,
        "actual[0].budget",
    ),
    (
        "commit-actual-a-single-charge",
        lambda lg, w: lg.commit(w.held, usd("a", 1), now=T0),  # type: ignore[arg-type]
        InvalidInput,
        "actual",
    ),
    (
        "commit-actual-a-str",
        lambda lg, w: lg.commit(w.held, "a", now=T0),  # type: ignore[arg-type]
        InvalidInput,
        "actual",
    ),
    ("commit-naive-now", lambda lg, w: lg.commit(w.held, now=NAIVE), InvalidInput, "now"),
    # release, renew, expire, bind, get
    ("release-unknown", lambda lg, w: lg.release("rsv_x", now=T0), ReservationNotFound, None),
    ("release-naive-now", lambda lg, w: lg.release(w.held, now=NAIVE), InvalidInput, "now"),
    (
        "renew-zero-lease",
        lambda lg, w: lg.renew(w.held, lease=timedelta(0), now=T0),
        InvalidInput,
        "lease",
    ),
    (
        "renew-unknown",
        lambda lg, w: lg.renew("rsv_x", lease=timedelta(minutes=1), now=T0),
        ReservationNotFound,
        None,
    ),
    (
        "renew-naive-now",
        lambda lg, w: lg.renew(w.held, lease=timedelta(minutes=1), now=NAIVE),
        InvalidInput,
        "now",
    ),
    ("expire-naive-now", lambda lg, w: lg.expire(now=NAIVE), InvalidInput, "now"),
    # renew_many, mark_in_doubt, bind's sent_at
    (
        "renew-many-a-str",
        lambda lg, w: lg.renew_many(w.held, lease=MINUTE, now=T0),
        InvalidInput,
        "reservation_ids",
    ),
    (
        "renew-many-none",
        lambda lg, w: lg.renew_many(None, lease=MINUTE, now=T0),  # type: ignore[arg-type]
        InvalidInput,
        "reservation_ids",
    ),
    (
        "renew-many-an-int-id",
        lambda lg, w: lg.renew_many([w.held, 7], lease=MINUTE, now=T0),  # type: ignore[list-item]
        InvalidInput,
        "reservation_ids[1]",
    ),
    (
        "renew-many-too-many",
        lambda lg, w: lg.renew_many([w.held] * 10_001, lease=MINUTE, now=T0),
        InvalidInput,
        "reservation_ids",
    ),
    (
        "renew-many-zero-lease",
        lambda lg, w: lg.renew_many([w.held], lease=timedelta(0), now=T0),
        InvalidInput,
        "lease",
    ),
    (
        "renew-many-naive-now",
        lambda lg, w: lg.renew_many([w.held], lease=MINUTE, now=NAIVE),
        InvalidInput,
        "now",
    ),
    (
        "mark-in-doubt-unknown",
        lambda lg, w: lg.mark_in_doubt("rsv_x", now=T0),
        ReservationNotFound,
        None,
    ),
    (
        "mark-in-doubt-naive-now",
        lambda lg, w: lg.mark_in_doubt(w.held, now=NAIVE),
        InvalidInput,
        "now",
    ),
    (
        "bind-naive-sent-at",
        lambda lg, w: lg.bind(w.held, "job-1", sent_at=NAIVE),
        InvalidInput,
        "sent_at",
    ),
    (
        "bind-str-sent-at",
        lambda lg, w: lg.bind(w.held, "job-1", sent_at="2026-03-15"),  # type: ignore[arg-type]
        InvalidInput,
        "sent_at",
    ),
    ("bind-empty", lambda lg, w: lg.bind(w.held, ""), InvalidInput, "external_id"),
    ("bind-unknown", lambda lg, w: lg.bind("rsv_x", "job-1"), ReservationNotFound, None),
    ("get-unknown", lambda lg, w: lg.get("rsv_x"), ReservationNotFound, None),
    # budgets and state
    ("state-unknown", lambda lg, w: lg.state("nope", now=T0), UnknownBudget, "key"),
    ("state-bad-key", lambda lg, w: lg.state("has space", now=T0), InvalidInput, "key"),
    ("state-naive-now", lambda lg, w: lg.state("a", now=NAIVE), InvalidInput, "now"),
    ("get-budget-unknown", lambda lg, w: lg.get_budget("nope"), UnknownBudget, "key"),
    (
        "put-not-a-budget",
        lambda lg, w: lg.put_budget({"key": "a"}),  # type: ignore[arg-type]
        InvalidInput,
        "budget",
    ),
    (
        "put-other-unit-on-a-used-budget",
        lambda lg, w: lg.put_budget(Budget("a", Unit.SECONDS, Decimal(1))),
        InvalidInput,
        "budget.unit",
    ),
    ("remove-with-outstanding", lambda lg, w: lg.remove_budget("a"), InvalidInput, "key"),
    ("remove-unknown", lambda lg, w: lg.remove_budget("nope"), UnknownBudget, "key"),
    # provider reports
    *[
        (
            f"report-bad-used-{i}",
            report_used(used),
            InvalidInput,
            "used",
        )
        for i, used in enumerate(
            [0.5, Decimal("NaN"), Decimal("Infinity"), Decimal(-1), True, "7", None]
        )
    ],
    (
        "report-naive-at",
        lambda lg, w: lg.record_report("a", Decimal(1), at=NAIVE),
        InvalidInput,
        "at",
    ),
    (
        "report-ten-years-ahead",
        lambda lg, w: lg.record_report("a", Decimal(1), at=T0 + 3650 * DAY, now=T0),  # type: ignore[call-arg]
        InvalidInput,
        "at",
    ),
    (
        "report-a-minute-ahead",
        lambda lg, w: lg.record_report("a", Decimal(1), at=T0 + timedelta(minutes=1), now=T0),  # type: ignore[call-arg]
        InvalidInput,
        "at",
    ),
    (
        "report-naive-now",
        lambda lg, w: lg.record_report("a", Decimal(1), at=T0, now=NAIVE),
        InvalidInput,
        "now",
    ),
    *[
        (
            f"report-covers-sent-{i}",
            lambda lg, w, covers=covers: lg.record_report(
                "a", Decimal(9), at=T0 + timedelta(seconds=1), covers_sent=covers
            ),
            InvalidInput,
            "covers_sent",
        )
        for i, covers in enumerate([1, 0, "yes", None, Decimal(1)])
    ],
    (
        "report-unknown-budget",
        lambda lg, w: lg.record_report("nope", Decimal(1), at=T0),
        UnknownBudget,
        "key",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_input_is_refused_and_changes_nothing(
    ledger: Ledger, call: Call, error: type[Exception], field: str | None
) -> None:
    world = await populate(ledger)
    ids = (world.held, world.committed)
    before = await snapshot(ledger, T0, ids)
    with pytest.raises(error) as info:
        await call(ledger, world)
    if field is not None:
        assert isinstance(info.value, InvalidInput)
        assert info.value.field == field
        assert str(info.value).startswith(f"{field}: ")
        assert len(info.value.reason) > 10  # says what to fix, not just "invalid"
    assert await snapshot(ledger, T0, ids) == before


@pytest.mark.parametrize(
    "amount", [Decimal(-1), Decimal("NaN"), Decimal("-Infinity"), 1.0, "1", False]
)
def test_bad_amounts_never_become_charges(amount: object) -> None:
    # A Charge validates on construction, so no ledger can ever be handed a bad amount.
    with pytest.raises(InvalidInput) as info:
        Charge("a", amount, Unit.USD)  # type: ignore[arg-type]
    assert info.value.field == "charge.amount"


async def test_unknown_reservation_error_names_the_id(ledger: Ledger) -> None:
    with pytest.raises(ReservationNotFound) as info:
        await ledger.get("rsv_missing")
    assert info.value.reservation_id == "rsv_missing"
    assert "rsv_missing" in str(info.value)
