"""The audit read, ``Ledger.reservations()``, on every backend: each reservation once, as
``get`` answers it, in pages; filtered by budget and by the span its life overlaps; a read
that changes nothing; bad filters refused when the read is asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from quotaguard.engine import Budget, Reservation, ReservationState, Unit
from quotaguard.errors import InvalidInput
from quotaguard.ledger import Ledger
from quotaguard.ledger.audit import AuditFilter, read_pages
from tests._support.ledger import snapshot, usd
from tests._support.times import T0

SEC = timedelta(seconds=1)


async def _all(ledger: Ledger, **filters: object) -> list[Reservation]:
    return [r async for r in ledger.reservations(**filters)]  # type: ignore[arg-type]


async def _history(ledger: Ledger) -> dict[str, str]:
    """One reservation in each state the ledger keeps; name -> id."""
    for key in ("a", "b"):
        await ledger.put_budget(Budget(key, Unit.USD, Decimal(100)))
    ids: dict[str, str] = {}

    async def hold(name: str, *charges: object, at: datetime, lease: int = 600) -> str:
        decision = await ledger.reserve(charges, now=at, lease=lease * SEC)  # type: ignore[arg-type]
        assert decision.reservation is not None
        ids[name] = decision.reservation.id
        return ids[name]

    rid = await hold("committed", usd("a", 5), usd("b", 2), at=T0)
    await ledger.bind(rid, "job-1", sent_at=T0 + SEC)
    await ledger.commit(rid, [usd("a", "4.5"), usd("b", 2)], now=T0 + 10 * SEC)
    await ledger.release(await hold("released", usd("a", 1), at=T0 + 2 * SEC), now=T0 + 3 * SEC)
    await hold("expired", usd("b", 3), at=T0 + 4 * SEC, lease=5)
    await ledger.expire(now=T0 + 20 * SEC)
    doubt = await hold("in doubt", usd("a", 2), at=T0 + 30 * SEC)
    await ledger.mark_in_doubt(doubt, now=T0 + 31 * SEC)
    await hold("held", usd("b", 1), at=T0 + 40 * SEC)
    return ids


async def test_every_reservation_once_as_get_answers_it(ledger: Ledger) -> None:
    ids = await _history(ledger)
    read = await _all(ledger)
    assert sorted(r.id for r in read) == sorted(ids.values())
    for r in read:
        assert r == await ledger.get(r.id)
    by_name = {name: next(r for r in read if r.id == rid) for name, rid in ids.items()}
    committed = by_name["committed"]
    assert committed.state is ReservationState.COMMITTED
    assert committed.actual == (usd("a", "4.5"), usd("b", 2))
    assert (committed.external_id, committed.sent_at) == ("job-1", T0 + SEC)
    assert committed.ended_at == T0 + 10 * SEC
    assert by_name["released"].state is ReservationState.RELEASED
    assert by_name["expired"].state is ReservationState.EXPIRED
    assert by_name["in doubt"].in_doubt_since == T0 + 31 * SEC
    assert by_name["held"].ended_at is None


@pytest.mark.parametrize("page_size", [1, 2, 3, 500])
async def test_pages_of_any_size_give_the_same_records(ledger: Ledger, page_size: int) -> None:
    ids = await _history(ledger)
    read = await _all(ledger, page_size=page_size)
    assert len(read) == len(ids) and {r.id for r in read} == set(ids.values())


async def test_the_budget_filter_keeps_reservations_with_a_charge_on_any_named(
    ledger: Ledger,
) -> None:
    ids = await _history(ledger)

    async def names(**filters: object) -> set[str]:
        found = {r.id for r in await _all(ledger, **filters)}
        return {name for name, rid in ids.items() if rid in found}

    assert await names(budgets=["a"]) == {"committed", "released", "in doubt"}
    assert await names(budgets=["b"]) == {"committed", "expired", "held"}
    assert await names(budgets=["a", "b"]) == set(ids)
    assert await names(budgets=["gone"]) == set()  # a key never stored: nothing, no error
    assert await names(budgets=[]) == set()


async def test_the_span_keeps_reservations_whose_life_overlaps_it(ledger: Ledger) -> None:
    ids = await _history(ledger)

    async def names(since: datetime | None, until: datetime | None) -> set[str]:
        found = {r.id for r in await _all(ledger, since=since, until=until)}
        return {name for name, rid in ids.items() if rid in found}

    # committed lives [T0, T0+10s], released [2 s, 3 s], expired [4 s, 20 s] (swept at 20 s),
    # in doubt from 30 s and held from 40 s, both still open.
    assert await names(T0 + 5 * SEC, T0 + 6 * SEC) == {"committed", "expired"}
    assert await names(T0 + 3 * SEC, T0 + 4 * SEC) == {"committed", "released"}  # ends count
    assert await names(None, T0 + 2 * SEC) == {"committed"}  # created at `until`: out
    assert await names(T0 + 21 * SEC, None) == {"in doubt", "held"}
    assert await names(T0 + 35 * SEC, T0 + 35 * SEC) == {"in doubt"}  # empty span, open life
    assert await names(T0 + 5 * SEC, T0 + 6 * SEC) == await names(T0 + 5 * SEC, T0 + 6 * SEC)


async def test_reading_changes_nothing_not_even_a_due_lease(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
    decision = await ledger.reserve([usd("a", 4)], now=T0, lease=SEC)
    assert decision.reservation is not None
    before = await _all(ledger)
    assert [r.state for r in before] == [ReservationState.HELD]  # lapsed, but nothing swept
    assert await _all(ledger) == before
    later = T0 + 60 * SEC
    assert await snapshot(ledger, later) == await snapshot(ledger, later)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"since": T0 + SEC, "until": T0}, "until"),
        ({"since": datetime(2026, 3, 15)}, "since"),  # naive: which zone?
        ({"until": "2026-03-15"}, "until"),
        ({"budgets": "a"}, "budgets"),  # one str is not a list of keys
        ({"budgets": ["no spaces allowed"]}, "budgets"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 10_001}, "page_size"),
        ({"page_size": True}, "page_size"),
    ],
)
async def test_bad_filters_are_refused_when_the_read_is_asked_for(
    ledger: Ledger, filters: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        ledger.reservations(**filters)  # type: ignore[arg-type]  # not even iterated
    assert info.value.field == field


async def test_since_after_until_says_what_to_fix(ledger: Ledger) -> None:
    since = datetime(2026, 3, 2, tzinfo=UTC)
    with pytest.raises(InvalidInput) as info:
        ledger.reservations(since=since, until=since - SEC)
    assert "must not be before since (2026-03-02T00:00:00+00:00)" in str(info.value)


async def test_a_record_given_on_two_pages_is_yielded_once() -> None:
    # Redis SCAN may repeat a key when the keyspace rehashes mid-scan.
    a = Reservation("rsv_a", (usd("a", 1),), T0, T0 + SEC)
    b = Reservation("rsv_b", (usd("a", 1),), T0, T0 + SEC)
    pages = {None: ([a], "1"), "1": ([a, b], "2"), "2": ([b], None)}

    async def fetch(after: str | None, limit: int) -> tuple[list[Reservation], str | None]:
        return pages[after]  # type: ignore[index]

    got = [r.id async for r in read_pages(fetch, AuditFilter(), 2, repeats=True)]
    assert got == ["rsv_a", "rsv_b"]
    again = [r.id async for r in read_pages(fetch, AuditFilter(), 2)]
    assert again == ["rsv_a", "rsv_a", "rsv_b", "rsv_b"]  # the SQL stores never repeat
