"""A clock a test moves by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A clock tests move by hand; pass it as ``clock=`` to the emulator, the guard, a client.

    ``FakeClock()`` starts at 2026-11-21 12:00 UTC (or ``start``, an aware datetime). Calling it
    returns the current time, also readable and settable as ``.now``; ``advance(minutes=5)``
    moves it by a :class:`~datetime.timedelta` of those keyword arguments and returns the new
    time. It never moves on its own::

        clock = FakeClock()
        async with Emulator(clock=clock) as emu:
            clock.advance(hours=1)
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __repr__(self) -> str:
        return f"FakeClock({self.now.isoformat()})"

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now
