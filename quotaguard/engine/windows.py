"""Budget windows: the span of time whose committed spend counts against a limit.

Windows are pure: ``bounds(now)`` gives the current ``[start, end)`` for a given instant
(``None`` for an open side). Outstanding reservations always count, whatever the window;
committed amounts count in the window that contains their commit time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import attrs

from quotaguard.errors import InvalidInput

__all__ = [
    "CalendarMonth",
    "FixedWindow",
    "NoWindow",
    "RollingDays",
    "Window",
    "check_aware",
    "window_from_dict",
    "window_to_dict",
]

Bounds: TypeAlias = tuple[datetime | None, datetime | None]


def check_aware(value: object, field: str) -> datetime:
    """A timezone-aware ``datetime`` or a clear error; naive times are ambiguous."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # what every injectable clock gives: aware, no offset lookup needed
    if not isinstance(value, datetime):
        raise InvalidInput(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, "datetime must be timezone-aware (e.g. datetime.now(UTC))")
    return value


@attrs.frozen
class NoWindow:
    """Everything ever committed counts."""

    kind = "none"

    def bounds(self, now: datetime) -> Bounds:
        return (None, None)

    def contains(self, now: datetime) -> bool:
        return True


@attrs.frozen
class FixedWindow:
    """A fixed ``[start, end)``. Outside it the budget admits nothing (as Braket does)."""

    start: datetime
    end: datetime
    kind = "fixed"

    def __attrs_post_init__(self) -> None:
        check_aware(self.start, "window.start")
        check_aware(self.end, "window.end")
        if self.end <= self.start:
            raise InvalidInput(
                "window.end",
                f"window is empty: end {self.end.isoformat()} is not after start "
                f"{self.start.isoformat()}",
            )

    def bounds(self, now: datetime) -> Bounds:
        return (self.start, self.end)

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end


@attrs.frozen
class CalendarMonth:
    """The calendar month in UTC: resets at 00:00 UTC on the 1st."""

    kind = "calendar_month"

    def bounds(self, now: datetime) -> Bounds:
        utc = now.astimezone(UTC)
        start = datetime(utc.year, utc.month, 1, tzinfo=UTC)
        end = datetime(utc.year + (utc.month == 12), utc.month % 12 + 1, 1, tzinfo=UTC)
        return (start, end)

    def contains(self, now: datetime) -> bool:
        return True


@attrs.frozen
class RollingDays:
    """The last ``days`` days up to now: ``[now − days, now]``."""

    days: int
    kind = "rolling_days"

    def __attrs_post_init__(self) -> None:
        if isinstance(self.days, bool) or not isinstance(self.days, int):
            raise InvalidInput(
                "window.days", f"days must be an int, got {type(self.days).__name__}"
            )
        if self.days < 1:
            raise InvalidInput("window.days", f"window is empty: days must be ≥ 1, got {self.days}")
        if self.days > 36_500:
            raise InvalidInput("window.days", f"days must be ≤ 36500, got {self.days}")

    def bounds(self, now: datetime) -> Bounds:
        # The end is open-ended so a commit stamped exactly `now` still counts.
        return (now - timedelta(days=self.days), None)

    def contains(self, now: datetime) -> bool:
        return True


Window: TypeAlias = NoWindow | FixedWindow | CalendarMonth | RollingDays


def window_to_dict(window: Window) -> dict[str, object]:
    """A JSON-ready description, for ledgers and config files."""
    if isinstance(window, FixedWindow):
        return {"kind": "fixed", "start": window.start.isoformat(), "end": window.end.isoformat()}
    if isinstance(window, RollingDays):
        return {"kind": "rolling_days", "days": window.days}
    return {"kind": window.kind}


def window_from_dict(data: dict[str, object]) -> Window:
    kind = data.get("kind")
    if kind == "none":
        return NoWindow()
    if kind == "calendar_month":
        return CalendarMonth()
    if kind == "rolling_days":
        days = data.get("days")
        if not isinstance(days, int):
            raise InvalidInput("window.days", f"expected an int, got {days!r}")
        return RollingDays(days)
    if kind == "fixed":
        start, end = data.get("start"), data.get("end")
        if not isinstance(start, str) or not isinstance(end, str):
            raise InvalidInput("window", "a fixed window needs ISO 8601 'start' and 'end'")
        try:
            parsed = (datetime.fromisoformat(start), datetime.fromisoformat(end))
        except ValueError as exc:
            raise InvalidInput("window", f"bad ISO 8601 time: {exc}") from None
        # Outside the try: FixedWindow's own InvalidInput (a ValueError) names its field.
        return FixedWindow(*parsed)
    raise InvalidInput(
        "window.kind",
        f"unknown window kind {kind!r}; use none, fixed, calendar_month, rolling_days",
    )
