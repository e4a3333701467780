"""``trim``: what every backend forgets, what it keeps, and that ``used`` never drops.

The rule is :mod:`quotaguard.ledger.retention`'s. Every test runs on memory, SQLite, Redis
and PostgreSQL (the ``ledger`` fixture).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard.engine import Budget, CalendarMonth, FixedWindow, NoWindow, RollingDays, Unit
from quotaguard.errors import InvalidInput, ReservationNotFound
from quotaguard.ledger import Ledger, Trimmed
from tests._support.ledger import snapshot, usd
from tests._support.times import T0

DAY = timedelta(days=1)
WINDOWS = {
    "none": NoWindow(),
    "month": CalendarMonth(),
    "rolling": RollingDays(2),
    "fixed": FixedWindow(T0 - 30 * DAY, T0 + 30 * DAY),
}


async def _spend(ledger: Ledger, key: str, amount: str, at: timedelta) -> str:
    decision = await ledger.reserve([usd(key, amount)], now=T0 + at)
    assert decision.reservation is not None
    await ledger.commit(decision.reservation.id, now=T0 + at)
    return decision.reservation.id


async def _budgets(ledger: Ledger) -> None:
    for key, window in WINDOWS.items():
        await ledger.put_budget(Budget(key, Unit.USD, Decimal(1000), window))


async def test_old_commits_go_and_used_stays(ledger: Ledger) -> None:
    await _budgets(ledger)
    for key in WINDOWS:
        for days in (0, 1, 5, 9, 10):
            await _spend(ledger, key, "1.5", days * DAY)
    now = T0 + 10 * DAY + timedelta(hours=1)
    before = {k: await ledger.state(k, now=now) for k in WINDOWS}
    later = {k: await ledger.state(k, now=now + 40 * DAY) for k in WINDOWS}
    trimmed = await ledger.trim(now=now, keep=2 * DAY)
    # The cut is T0 + 8 d 1 h. none and rolling (its start is the cut): days 0, 1, 5 go;
    # month (March, from T0 - 14 d) and fixed (from T0 - 30 d): none before their start.
    assert trimmed == Trimmed(commits=6, reservations=12)
    for key in WINDOWS:
        assert await ledger.state(key, now=now) == before[key]
        assert await ledger.state(key, now=now + 40 * DAY) == later[key]
        # Inside the retention every commit is still there; before it, the dropped ones are not.
        assert await ledger.committed_between(key, now - 2 * DAY, now) == Decimal(3)
        kept = Decimal("4.5") if key in ("month", "fixed") else Decimal(0)
        assert await ledger.committed_between(key, T0, T0 + 6 * DAY) == kept
    assert await ledger.trim(now=now, keep=2 * DAY) == Trimmed()  # nothing more to go
    # The unwindowed total still holds what was folded, after more spend.
    await _spend(ledger, "none", "2", 10 * DAY + timedelta(hours=2))
    assert (await ledger.state("none", now=now + DAY)).committed == Decimal("9.5")


async def test_a_window_made_unwindowed_after_a_trim_counts_every_commit(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("r", Unit.USD, Decimal(100), RollingDays(1)))
    for days in (0, 3, 6):
        await _spend(ledger, "r", "2", days * DAY)
    now = T0 + 6 * DAY
    assert (await ledger.trim(now=now, keep=DAY)).commits == 2
    await ledger.put_budget(Budget("r", Unit.USD, Decimal(100), NoWindow()))
    assert (await ledger.state("r", now=now)).used == Decimal(6)


async def test_an_unwindowed_budget_keeps_the_commits_since_its_report(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("n", Unit.USD, Decimal(100)))
    await ledger.record_report("n", Decimal(1), at=T0 + DAY, now=T0 + DAY)
    for days in (0, 2, 3):
        await _spend(ledger, "n", "10", days * DAY)
    now = T0 + 10 * DAY
    before = await ledger.state("n", now=now)
    # The report (1 + 20 since) would count less than the total if "since" lost commits.
    assert (await ledger.trim(now=now, keep=DAY)).commits == 1  # only the one before it
    assert await ledger.state("n", now=now) == before
    await ledger.record_report("n", Decimal(50), at=now, now=now)
    assert (await ledger.state("n", now=now)).used == Decimal(50)


async def test_live_in_doubt_lapsed_and_recent_records_stay(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(1000)))

    async def hold(key: str | None = None, lease: timedelta = 30 * DAY) -> str:
        decision = await ledger.reserve([usd("a", 1)], now=T0, lease=lease, idempotency_key=key)
        assert decision.reservation is not None
        return decision.reservation.id

    held, doubt = await hold(), await hold("doubt")
    await ledger.mark_in_doubt(doubt, now=T0)
    lapsed = await hold("lapsed", lease=timedelta(hours=1))
    await ledger.bind(lapsed, "job-lapsed", sent_at=T0)
    await ledger.expire(now=T0 + timedelta(hours=2))
    old_keyed = await hold("old")
    await ledger.bind(old_keyed, "job-old", sent_at=T0)
    await ledger.commit(old_keyed, now=T0)
    released = await hold()
    await ledger.release(released, now=T0)
    unsent = await hold(lease=timedelta(hours=1))
    await ledger.expire(now=T0 + timedelta(hours=2))
    now = T0 + 10 * DAY
    recent = await hold("recent")
    await ledger.commit(recent, now=now - timedelta(hours=1))

    assert await ledger.trim(now=now, keep=DAY) == Trimmed(commits=1, reservations=3)
    for rid in (old_keyed, released, unsent):
        with pytest.raises(ReservationNotFound):
            await ledger.get(rid)
    assert await ledger.find_external("job-old") is None
    assert {r.id for r in await ledger.outstanding()} == {held, doubt}
    assert [r.id for r in await ledger.in_doubt()] == [doubt]
    assert [r.id for r in await ledger.lapsed()] == [lapsed]
    assert (await ledger.find_external("job-lapsed")) == await ledger.get(lapsed)
    # A key replays for as long as its reservation is kept; a forgotten one is free again.
    for key, rid in (("doubt", doubt), ("lapsed", lapsed), ("recent", recent)):
        again = await ledger.reserve([usd("a", 1)], now=now, idempotency_key=key)
        assert again.replayed and again.reservation is not None and again.reservation.id == rid
    fresh = await ledger.reserve([usd("a", 1)], now=now, idempotency_key="old")
    assert not fresh.replayed and fresh.reservation is not None
    assert fresh.reservation.id != old_keyed
    # The lapsed one is still owed, and its commit still counts.
    committed = await ledger.commit(lapsed, now=now)
    assert committed.state.value == "committed"
    assert (await ledger.state("a", now=now)).committed == Decimal(3)


async def test_trim_steps_repeat_until_nothing_is_left(ledger: Ledger) -> None:
    await _budgets(ledger)
    for i in range(7):
        await _spend(ledger, "none", "1", i * timedelta(hours=1))
        await _spend(ledger, "rolling", "1", i * timedelta(hours=1))
    ledger.trim_batch = 3  # type: ignore[attr-defined]
    now = T0 + 10 * DAY
    before = [await ledger.state(k, now=now) for k in WINDOWS]
    assert await ledger.trim(now=now, keep=DAY) == Trimmed(commits=14, reservations=14)
    assert [await ledger.state(k, now=now) for k in WINDOWS] == before


@pytest.mark.parametrize(
    ("keep", "field", "words"),
    [
        (timedelta(seconds=-1), "keep", "must not be negative"),
        (86400, "keep", "must be a timedelta"),
        (timedelta(days=36_501), "keep", "at most 36500 days"),
    ],
)
async def test_bad_retention_is_refused_and_nothing_goes(
    ledger: Ledger, keep: object, field: str, words: str
) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(100), RollingDays(1)))
    rid = await _spend(ledger, "a", "5", timedelta(0))
    now = T0 + 10 * DAY
    before = await snapshot(ledger, now, (rid,))
    with pytest.raises(InvalidInput) as caught:
        await ledger.trim(now=now, keep=keep)  # type: ignore[arg-type]
    assert caught.value.field == field and words in str(caught.value)
    assert await snapshot(ledger, now, (rid,)) == before
    assert await ledger.committed_between("a", T0, now) == 5


async def test_a_naive_now_is_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        await ledger.trim(now=T0.replace(tzinfo=None), keep=DAY)


async def test_a_budget_removed_after_a_trim_counts_its_folded_commits_when_it_returns(
    ledger: Ledger,
) -> None:
    await ledger.put_budget(Budget("n", Unit.USD, Decimal(100)))
    for days in (0, 1, 8):
        await _spend(ledger, "n", "3", days * DAY)
    now = T0 + 9 * DAY
    assert (await ledger.trim(now=now, keep=DAY)).commits == 2
    await ledger.remove_budget("n")
    await ledger.put_budget(Budget("n", Unit.USD, Decimal(100)))
    assert (await ledger.state("n", now=now)).used == Decimal(9)
    # Its unit is still in use: the folded commits are commits.
    with pytest.raises(InvalidInput, match="already counts USD"):
        await ledger.put_budget(Budget("n", Unit.SECONDS, Decimal(100)))
