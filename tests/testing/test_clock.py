"""FakeClock: a public clock tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quotaguard.testing import Emulator, FakeClock

IONQ = "arn:aws:braket:us-east-1::device/qpu/ionq"


def test_it_starts_at_a_fixed_aware_utc_time_and_moves_only_by_hand() -> None:
    clock = FakeClock()
    assert clock() == clock.now == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert clock().tzinfo is UTC
    assert clock() == clock()  # it never moves on its own


def test_advance_takes_timedelta_keywords_and_returns_the_new_time() -> None:
    start = datetime(2030, 1, 31, 23, 59, tzinfo=UTC)
    clock = FakeClock(start)
    assert clock.advance(minutes=1, seconds=30) == start + timedelta(seconds=90)
    assert clock() == datetime(2030, 2, 1, 0, 0, 30, tzinfo=UTC)
    clock.now = start  # and it may be set outright
    assert clock() == start
    assert repr(clock) == "FakeClock(2030-01-31T23:59:00+00:00)"


async def test_the_emulator_reads_it() -> None:
    clock = FakeClock()
    async with Emulator(clock=clock) as emu:
        first = emu.braket.add_spending_limit(f"{IONQ}/Aria-1", "5")
        clock.advance(hours=1)
        later = emu.braket.add_spending_limit(f"{IONQ}/Forte-1", "5")
    made = [emu.braket.limits[arn].created_at for arn in (first, later)]
    assert made == [datetime(2026, 11, 21, 12, tzinfo=UTC), datetime(2026, 11, 21, 13, tzinfo=UTC)]
