"""Trimming: what a ledger may forget, and why ``used`` never drops when it does.

``trim(now=, keep=)`` forgets two things older than ``cut = now - keep``:

- **Commits no window can count any more.** A window's start never moves back as time goes
  on (rolling and calendar windows move forward, a fixed one stays), so a commit before the
  start of its budget's window at ``now`` is counted by no later state. A budget's commits
  go only before :func:`commit_cutoff`: the earlier of ``cut`` and its window's start, and,
  for an unwindowed budget with a provider report, the report's instant (its "since" sums
  the commits after it). Every commit that goes is folded into the budget's running total
  first (Redis and PostgreSQL keep one; memory and SQLite keep one commit at
  :data:`FOLDED_AT`, before any instant a window or ``committed_between`` can name), so an
  unwindowed budget's ``used`` is unchanged, and so is a windowed budget's made unwindowed
  later. Commits newer than ``cut`` always stay: ``committed_between`` (the forecast's
  rate) is exact for every range inside the retention. Commits of removed budgets stay (the
  key may return with any window).
- **Ended reservations** (committed, released, expired unsent) that ended before ``cut``,
  with their idempotency key and external id: a retry with that key replays for ``keep``
  after its reservation ended, and is a new submission after that. Held reservations (in
  doubt or not) and lapsed ones (expired after their work may have been sent, not committed
  since) always stay.

What a later change may not get back: a window made *longer* than ``keep`` after a trim
counts only the commits that were kept; a provider report dated before ``cut`` and stored
after a trim counts no commit before ``cut`` as "since" it. Keep ``keep`` longer than any
window you may switch to and than any report's lag; the default, 400 days, is longer than a
year.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from quotaguard.engine.windows import Window
from quotaguard.errors import InvalidInput
from quotaguard.ledger.encoding import epoch_us

__all__ = [
    "DEFAULT_RETENTION",
    "FOLDED_AT",
    "MAX_RETENTION",
    "TRIM_BATCH",
    "Trimmed",
    "check_keep",
    "commit_cutoff",
]

DEFAULT_RETENTION = timedelta(days=400)
MAX_RETENTION = timedelta(days=36_500)

#: The most records one trim step forgets (Redis: one script call); ``trim`` repeats steps.
TRIM_BATCH = 1000

#: Where memory and SQLite keep a budget's folded commits (epoch µs): before year 1, so no
#: window start and no ``committed_between`` range reaches it; only the unwindowed sum does.
FOLDED_AT = -(2**62)


@attrs.frozen
class Trimmed:
    """What one ``trim`` forgot: commit records and reservation records."""

    commits: int = 0
    reservations: int = 0

    def __add__(self, other: Trimmed) -> Trimmed:
        return Trimmed(self.commits + other.commits, self.reservations + other.reservations)


def check_keep(keep: object) -> timedelta:
    """A ``timedelta`` in ``[0, 36500 days]``: how long trimming keeps what ended."""
    if not isinstance(keep, timedelta):
        raise InvalidInput("keep", f"keep must be a timedelta, got {type(keep).__name__}")
    if keep < timedelta(0):
        raise InvalidInput("keep", f"keep must not be negative, got {keep}; nothing was trimmed")
    if keep > MAX_RETENTION:
        raise InvalidInput("keep", f"keep must be at most {MAX_RETENTION.days} days, got {keep}")
    return keep


def commit_cutoff(window: Window, reported_at: int | None, now: datetime, cut: int) -> int:
    """The instant (epoch µs) before which a budget's commits may go (the module's rule).

    The Redis script (``lua/trim.lua``) and PostgreSQL (``qg_trim``) apply the same rule.
    """
    start, _ = window.bounds(now)
    if start is not None:
        return min(cut, epoch_us(start))
    return cut if reported_at is None else min(cut, reported_at)
