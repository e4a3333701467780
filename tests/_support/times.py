"""Instants the tests share."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["T0", "utc"]

#: A fixed instant in the middle of a month, so windows do not roll over by accident.
T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    """``datetime(*args)`` in UTC."""
    return datetime(*args, tzinfo=UTC)
