"""Leases, idempotency keys, provider reports and budget lifecycle, on every backend."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from quotaguard.engine import RULE_REMAINING, Budget, CalendarMonth, ReservationState, Unit
from quotaguard.engine.model import Reservation
from quotaguard.ledger import Ledger
from tests._support.ledger import usd
from tests._support.times import T0, utc

MIN = timedelta(minutes=1)


async def hold(
    ledger: Ledger, amount: str, lease: timedelta = 10 * MIN, **kw: object
) -> Reservation:
    decision = await ledger.reserve([usd("a", amount)], now=kw.pop("now", T0), lease=lease, **kw)  # type: ignore[arg-type]
    assert decision.reservation is not None, decision.violations
    return decision.reservation


async def setup_a(ledger: Ledger, limit: int = 100) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(limit)))


# -- leases ---------------------------------------------------------------------------------


async def test_a_lapsed_lease_stops_counting_when_state_is_read(ledger: Ledger) -> None:
    await setup_a(ledger)
    r = await hold(ledger, "60")
    assert r.lease_expires_at == T0 + 10 * MIN
    just_before = await ledger.state("a", now=T0 + 10 * MIN - timedelta(microseconds=1))
    assert (just_before.reserved, just_before.outstanding) == (60, 1)
    at_expiry = await ledger.state("a", now=T0 + 10 * MIN)
    assert (at_expiry.reserved, at_expiry.outstanding, at_expiry.remaining) == (0, 0, 100)
    expired = await ledger.get(r.id)
    assert expired.state is ReservationState.EXPIRED
    assert expired.ended_at == T0 + 10 * MIN
    assert await ledger.outstanding() == []


async def test_a_lapsed_lease_frees_budget_for_the_next_reserve(ledger: Ledger) -> None:
    await setup_a(ledger)
    first = await hold(ledger, "60")
    refused = await ledger.reserve([usd("a", "60")], now=T0 + 9 * MIN)
    assert refused.rules == (RULE_REMAINING,)
    second = await hold(ledger, "60", now=T0 + 10 * MIN)  # expires `first` lazily
    assert (await ledger.get(first.id)).state is ReservationState.EXPIRED
    assert [r.id for r in await ledger.outstanding()] == [second.id]


async def test_expire_counts_what_it_ended_once(ledger: Ledger) -> None:
    await setup_a(ledger)
    await hold(ledger, "1", lease=MIN)
    await hold(ledger, "2", lease=2 * MIN)
    keep = await hold(ledger, "3", lease=60 * MIN)
    assert await ledger.expire(now=T0) == 0
    assert await ledger.expire(now=T0 + 2 * MIN) == 2
    assert await ledger.expire(now=T0 + 2 * MIN) == 0
    assert [r.id for r in await ledger.outstanding()] == [keep.id]
    assert (await ledger.state("a", now=T0 + 2 * MIN)).reserved == 3


async def test_renew_extends_and_shortens_a_held_lease(ledger: Ledger) -> None:
    await setup_a(ledger)
    r = await hold(ledger, "60")
    renewed = await ledger.renew(r.id, lease=10 * MIN, now=T0 + 5 * MIN)
    assert renewed.lease_expires_at == T0 + 15 * MIN
    assert renewed.state is ReservationState.HELD
    assert (await ledger.state("a", now=T0 + 12 * MIN)).reserved == 60
    assert (await ledger.state("a", now=T0 + 15 * MIN)).reserved == 0
    # Shortening works too: the earlier deadline wins over the one first given.
    s = await hold(ledger, "10", lease=60 * MIN, now=T0 + 15 * MIN)
    await ledger.renew(s.id, lease=MIN, now=T0 + 16 * MIN)
    assert await ledger.expire(now=T0 + 17 * MIN) == 1


async def test_renew_does_not_revive_an_ended_reservation(ledger: Ledger) -> None:
    await setup_a(ledger)
    lapsed = await hold(ledger, "1", lease=MIN)
    done = await hold(ledger, "2")
    await ledger.commit(done.id, now=T0)
    late = await ledger.renew(lapsed.id, lease=60 * MIN, now=T0 + 2 * MIN)
    assert (late.state, late.lease_expires_at) == (ReservationState.EXPIRED, T0 + MIN)
    again = await ledger.renew(done.id, lease=60 * MIN, now=T0 + 2 * MIN)
    assert again.state is ReservationState.COMMITTED
    assert (await ledger.state("a", now=T0 + 2 * MIN)).reserved == 0


async def test_a_commit_after_expiry_still_records_the_spend(ledger: Ledger) -> None:
    await setup_a(ledger)
    r = await hold(ledger, "60")
    assert await ledger.expire(now=T0 + 11 * MIN) == 1
    late = await ledger.commit(r.id, [usd("a", "70")], now=T0 + 12 * MIN)
    assert late.state is ReservationState.COMMITTED
    assert late.actual == (usd("a", "70"),)
    state = await ledger.state("a", now=T0 + 13 * MIN)
    assert (state.committed, state.reserved, state.remaining) == (70, 0, 30)
    # It ends once: neither a second commit nor a release changes anything.
    assert await ledger.commit(r.id, [usd("a", "1")], now=T0 + 14 * MIN) == late
    assert await ledger.release(r.id, now=T0 + 14 * MIN) == late
    assert (await ledger.state("a", now=T0 + 14 * MIN)).committed == 70


async def test_release_of_a_lapsed_reservation_reports_it_expired(ledger: Ledger) -> None:
    await setup_a(ledger)
    r = await hold(ledger, "5", lease=MIN)
    await ledger.expire(now=T0 + MIN)
    assert (await ledger.release(r.id, now=T0 + 2 * MIN)).state is ReservationState.EXPIRED


async def test_commit_and_release_end_exactly_once(ledger: Ledger) -> None:
    await setup_a(ledger)
    r = await hold(ledger, "40")
    first = await ledger.commit(r.id, [usd("a", "30")], now=T0 + MIN)
    assert (first.state, first.ended_at, first.actual) == (
        ReservationState.COMMITTED,
        T0 + MIN,
        (usd("a", "30"),),
    )
    assert await ledger.commit(r.id, now=T0 + 2 * MIN) == first
    assert await ledger.release(r.id, now=T0 + 2 * MIN) == first
    s = await hold(ledger, "10")
    released = await ledger.release(s.id, now=T0 + 3 * MIN)
    assert released.state is ReservationState.RELEASED
    assert await ledger.commit(s.id, now=T0 + 4 * MIN) == released
    assert await ledger.release(s.id, now=T0 + 4 * MIN) == released
    state = await ledger.state("a", now=T0 + 5 * MIN)
    assert (state.committed, state.reserved) == (30, 0)


# -- idempotency keys -----------------------------------------------------------------------


async def test_a_key_replays_while_held_or_committed(ledger: Ledger) -> None:
    await setup_a(ledger)
    r = await hold(ledger, "10", idempotency_key="job-1")
    replay = await ledger.reserve([usd("a", "10")], now=T0 + MIN, idempotency_key="job-1")
    assert (replay.admitted, replay.replayed, replay.reservation) == (True, True, r)
    await ledger.commit(r.id, now=T0 + 2 * MIN)
    after = await ledger.reserve([usd("a", "10")], now=T0 + 3 * MIN, idempotency_key="job-1")
    assert after.replayed and after.reservation is not None
    assert (after.reservation.id, after.reservation.state) == (r.id, ReservationState.COMMITTED)
    state = await ledger.state("a", now=T0 + 3 * MIN)
    assert (state.committed, state.reserved) == (10, 0)  # held once, however often retried


async def test_release_and_expiry_free_the_key(ledger: Ledger) -> None:
    await setup_a(ledger)
    r = await hold(ledger, "10", idempotency_key="k")
    released = await ledger.release(r.id, now=T0)
    assert released.idempotency_key is None  # it no longer owns the key
    again = await hold(ledger, "20", idempotency_key="k", now=T0 + MIN)  # other charges: fine
    assert again.id != r.id
    # Lapsed but not yet swept: the same key takes a fresh hold, not the dead one.
    fresh = await ledger.reserve([usd("a", "20")], now=T0 + 11 * MIN, idempotency_key="k")
    assert fresh.admitted and not fresh.replayed
    assert fresh.reservation is not None and fresh.reservation.id != again.id
    assert (await ledger.get(again.id)).state is ReservationState.EXPIRED
    assert (await ledger.state("a", now=T0 + 11 * MIN)).reserved == 20


# -- external ids ---------------------------------------------------------------------------


async def test_bind_and_find_external(ledger: Ledger) -> None:
    await setup_a(ledger)
    r = await hold(ledger, "10")
    assert await ledger.find_external("job-1") is None
    bound = await ledger.bind(r.id, "job-1")
    assert bound.external_id == "job-1"
    assert await ledger.find_external("job-1") == bound
    rebound = await ledger.bind(r.id, "job-2")  # a resubmitted job gets a new id
    assert await ledger.find_external("job-2") == rebound
    assert await ledger.find_external("job-1") is None
    committed = await ledger.commit(r.id, now=T0)
    assert committed.external_id == "job-2"


# -- provider reports -----------------------------------------------------------------------


async def test_a_report_is_a_floor_plus_what_came_after(ledger: Ledger) -> None:
    await setup_a(ledger)
    await ledger.commit((await hold(ledger, "10")).id, now=T0)
    await ledger.record_report("a", Decimal(50), at=T0 + MIN)
    state = await ledger.state("a", now=T0 + MIN)
    assert (state.committed, state.used, state.reported, state.reported_at) == (
        10,
        50,
        50,
        T0 + MIN,
    )
    await ledger.commit((await hold(ledger, "5", now=T0 + 2 * MIN)).id, now=T0 + 2 * MIN)
    await hold(ledger, "20", now=T0 + 3 * MIN)
    state = await ledger.state("a", now=T0 + 3 * MIN)
    assert (state.committed, state.reserved, state.used, state.remaining) == (15, 20, 75, 25)
    refused = await ledger.reserve([usd("a", "26")], now=T0 + 3 * MIN)
    assert refused.violations[0].remaining == 25


async def test_a_low_report_never_lowers_local_usage(ledger: Ledger) -> None:
    await setup_a(ledger)
    await ledger.commit((await hold(ledger, "40")).id, now=T0)
    await ledger.record_report("a", Decimal(1), at=T0 + MIN)
    assert (await ledger.state("a", now=T0 + MIN)).used == 40


async def test_an_older_report_never_replaces_a_newer_one(ledger: Ledger) -> None:
    await setup_a(ledger)
    await ledger.record_report("a", Decimal(50), at=T0 + 60 * MIN)
    await ledger.record_report("a", Decimal(90), at=T0)  # arrived late, taken earlier
    state = await ledger.state("a", now=T0 + 61 * MIN)
    assert (state.reported, state.reported_at, state.used) == (50, T0 + 60 * MIN, 50)
    await ledger.record_report("a", Decimal(20), at=T0 + 120 * MIN)  # newer wins, even if lower
    assert (await ledger.state("a", now=T0 + 121 * MIN)).reported == 20


async def test_a_report_from_last_month_does_not_count(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("m", Unit.USD, Decimal(100), CalendarMonth()))
    await ledger.record_report("m", Decimal(80), at=utc(2026, 1, 31, 23))
    january = await ledger.state("m", now=utc(2026, 1, 31, 23, 30))
    assert (january.reported, january.used) == (80, 80)
    february = await ledger.state("m", now=utc(2026, 2, 1))
    assert (february.reported, february.used, february.remaining) == (None, 0, 100)
    assert (await ledger.reserve([usd("m", "100")], now=utc(2026, 2, 1))).admitted


# -- budget lifecycle -----------------------------------------------------------------------


async def test_put_budget_updates_and_remove_keeps_history(ledger: Ledger) -> None:
    await setup_a(ledger)
    await ledger.put_budget(Budget("z", Unit.SECONDS, Decimal(1)))
    await ledger.put_budget(Budget("z", Unit.USD, Decimal(5)))  # unused: unit may change
    assert [b.key for b in sorted(await ledger.budgets(), key=lambda b: b.key)] == ["a", "z"]
    assert await ledger.get_budget("z") == Budget("z", Unit.USD, Decimal(5))
    await ledger.commit((await hold(ledger, "30")).id, now=T0)
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(40)))  # a new limit, same history
    assert (await ledger.state("a", now=T0)).remaining == 10
    await ledger.remove_budget("a")
    assert [b.key for b in await ledger.budgets()] == ["z"]
    # Spend is never forgotten: the same key comes back with its commits.
    await setup_a(ledger)
    assert (await ledger.state("a", now=T0)).committed == 30


async def test_report_dated_after_the_window_never_lowers_usage() -> None:
    """A provider report stamped after a fixed window's end must not subtract spend."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from quotaguard import Budget, Charge, FixedWindow, MemoryLedger, Unit

    start = datetime(2026, 1, 1, tzinfo=UTC)
    ledger = MemoryLedger()
    await ledger.put_budget(
        Budget("fixed", Unit.USD, Decimal(10), FixedWindow(start, start + timedelta(days=1)))
    )
    now = start + timedelta(hours=1)
    decision = await ledger.reserve([Charge("fixed", Decimal(4), Unit.USD)], now=now)
    assert decision.reservation is not None
    await ledger.commit(decision.reservation.id, now=now)
    late = await ledger.reserve([Charge("fixed", Decimal(5), Unit.USD)], now=now)
    assert late.reservation is not None
    # Committed after the window closed, then a report stamped later still.
    await ledger.commit(late.reservation.id, now=start + timedelta(hours=36))
    await ledger.record_report("fixed", Decimal(9), at=start + timedelta(days=2))
    state = await ledger.state("fixed", now=now)
    assert state.used == Decimal(9)
    assert state.remaining == Decimal(1)


async def test_an_expired_hold_of_sent_work_keeps_its_idempotency_key(ledger: Ledger) -> None:
    await setup_a(ledger)
    sent = await hold(ledger, "10", idempotency_key="order-42")
    await ledger.bind(sent.id, "job-42")
    unsent = await hold(ledger, "10", idempotency_key="order-43")
    later = T0 + 11 * MIN  # both leases lapse
    assert await ledger.expire(now=later) == 2
    again = await ledger.reserve([usd("a", "10")], now=later, idempotency_key="order-42")
    assert again.replayed
    assert again.reservation is not None
    assert again.reservation.id == sent.id  # the work was sent: a retry must not resend it
    fresh = await ledger.reserve([usd("a", "10")], now=later, idempotency_key="order-43")
    assert not fresh.replayed
    assert fresh.reservation is not None
    assert fresh.reservation.id != unsent.id


async def test_lapsed_lists_bound_work_whose_lease_expired_until_it_is_committed(
    ledger: Ledger,
) -> None:
    await setup_a(ledger)
    sent = await hold(ledger, "10")
    await ledger.bind(sent.id, "job-1")
    unsent = await hold(ledger, "10")  # never bound: nothing ran, nothing is owed
    running = await hold(ledger, "10", lease=60 * MIN)
    await ledger.bind(running.id, "job-2")
    assert await ledger.lapsed() == []  # nothing has expired yet
    later = T0 + 11 * MIN
    assert await ledger.expire(now=later) == 2
    (owed,) = await ledger.lapsed()
    assert (owed.id, owed.external_id, owed.state) == (sent.id, "job-1", ReservationState.EXPIRED)
    assert unsent.id not in {r.id for r in await ledger.lapsed()}
    # Its cost, once known, is recorded; then nothing is owed.
    done = await ledger.commit(sent.id, [usd("a", "7")], now=later)
    assert done.state is ReservationState.COMMITTED
    assert await ledger.lapsed() == []
    assert (await ledger.state("a", now=later)).committed == Decimal(7)


async def test_work_bound_after_its_lease_lapsed_is_owed_too(ledger: Ledger) -> None:
    await setup_a(ledger)
    slow = await hold(ledger, "10", lease=MIN)  # the send took longer than the lease
    assert await ledger.expire(now=T0 + 2 * MIN) == 1
    assert await ledger.lapsed() == []
    await ledger.bind(slow.id, "job-slow")
    assert [r.id for r in await ledger.lapsed()] == [slow.id]
    await ledger.commit(slow.id, now=T0 + 3 * MIN)
    assert await ledger.lapsed() == []


async def test_release_and_renew_of_lapsed_work_leave_it_owed(ledger: Ledger) -> None:
    await setup_a(ledger)
    sent = await hold(ledger, "10")
    await ledger.bind(sent.id, "job-1")
    later = T0 + 11 * MIN
    assert (await ledger.renew(sent.id, lease=10 * MIN, now=later)).state is (
        ReservationState.EXPIRED  # too late: renewing a lapsed lease does not revive it
    )
    assert (await ledger.release(sent.id, now=later)).state is ReservationState.EXPIRED
    await ledger.bind(sent.id, "job-1b")  # a rebind keeps it listed once, under its new id
    (owed,) = await ledger.lapsed()
    assert (owed.id, owed.external_id) == (sent.id, "job-1b")
