"""The memory ledger's counters: one :class:`Account` per budget, and the budgets as a
mapping for the engine's checks, without copying them on every reserve."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from datetime import datetime

import attrs

from quotaguard.engine.amounts import to_micro
from quotaguard.engine.model import Budget
from quotaguard.engine.rules import Usage, report_counts
from quotaguard.ledger.encoding import epoch_us
from quotaguard.ledger.retention import FOLDED_AT

__all__ = ["Account", "BudgetView", "CommitIndex"]


@attrs.define
class CommitIndex:
    """Commits sorted by one instant with running totals: a span's sum is two bisects."""

    times: list[int] = attrs.Factory(list)
    totals: list[int] = attrs.Factory(list)  # running sum after each commit

    def add(self, at: int, amount: int) -> None:
        if not self.times or at >= self.times[-1]:
            self.times.append(at)
            self.totals.append((self.totals[-1] if self.totals else 0) + amount)
            return
        # An out-of-order instant: insert and rebuild the running totals (rare).
        i = bisect.bisect_right(self.times, at)
        amounts = [b - a for a, b in zip([0, *self.totals], self.totals, strict=False)]
        self.times.insert(i, at)
        amounts.insert(i, amount)
        total, self.totals = 0, []
        for a in amounts:
            total += a
            self.totals.append(total)

    def fold_before(self, cut: int) -> int:
        """Fold the commits before ``cut`` into one at :data:`FOLDED_AT`; how many went.

        The running totals from ``cut`` on are unchanged, and so is every sum.
        """
        times = self.times
        i = bisect.bisect_left(times, cut)
        gone = i - (1 if times and times[0] == FOLDED_AT else 0)
        if gone > 0:
            times[:i] = [FOLDED_AT]
            self.totals[:i] = [self.totals[i - 1]]
        return max(gone, 0)

    def between(self, start: int | None, end: int | None) -> int:
        totals = self.totals
        if not totals:
            return 0
        if start is not None and end is not None and start >= end:
            return 0  # an empty span (a report dated after the window's end)
        # totals[i - 1] is the sum of the commits before index i.
        hi = len(totals) if end is None else bisect.bisect_left(self.times, end)
        lo = 0 if start is None else bisect.bisect_left(self.times, start)
        return (totals[hi - 1] if hi > 0 else 0) - (totals[lo - 1] if lo > 0 else 0)


@attrs.define
class Account:
    """Counters for one budget.

    Commits are indexed twice: by commit time (the window's sum, and "since" for a report
    that does not cover sent work) and by *floor time* — when the reservation's work was
    sent, or the commit time when unsent — ("since" for a report that covers sent work).
    ``inside`` is the held amount of holds sent before a covering report, kept as holds are
    bound and end (``sent`` lists this budget's sent holds), so reserve never scans them.
    """

    budget: Budget
    reserved: int = 0
    outstanding: int = 0
    commits: CommitIndex = attrs.Factory(CommitIndex)
    floors: CommitIndex = attrs.Factory(CommitIndex)
    reported: int | None = None
    reported_at: datetime | None = None
    covers_sent: bool = False
    inside: int = 0
    #: Held reservations on this budget with a send time: id -> (sent_at in us, amount).
    sent: dict[str, tuple[int, int]] = attrs.Factory(dict)
    _limit_of: Budget | None = attrs.field(default=None, init=False, repr=False)
    _limit_micro: int = attrs.field(default=0, init=False, repr=False)

    def add_commit(self, at: int, floor: int, amount: int) -> None:
        self.commits.add(at, amount)
        self.floors.add(floor, amount)

    def is_inside(self, sent_us: int) -> bool:
        """Whether a hold sent at ``sent_us`` is inside the stored report."""
        return (
            self.covers_sent
            and self.reported_at is not None
            and sent_us < epoch_us(self.reported_at)
        )

    def mark_sent(self, rid: str, sent_us: int, amount: int) -> None:
        """A held reservation's send time was recorded (or moved)."""
        old = self.sent.get(rid)
        if old is not None and self.is_inside(old[0]):
            self.inside -= old[1]
        self.sent[rid] = (sent_us, amount)
        if self.is_inside(sent_us):
            self.inside += amount

    def unhold(self, rid: str, amount: int) -> None:
        self.reserved -= amount
        self.outstanding -= 1
        old = self.sent.pop(rid, None)
        if old is not None and self.is_inside(old[0]):
            self.inside -= old[1]

    def report(self, micro: int, at: datetime, covers_sent: bool) -> None:
        """Keep a report unless a newer one is stored; one scan of the sent holds."""
        if self.reported_at is not None and at < self.reported_at:
            return  # an older one never wins
        self.reported, self.reported_at, self.covers_sent = micro, at, covers_sent
        self.inside = sum(a for s, a in self.sent.values() if self.is_inside(s))

    def limit_micro(self) -> int:
        budget = self.budget
        if self._limit_of is not budget:  # put_budget replaced it: convert once per budget
            self._limit_of, self._limit_micro = budget, to_micro(budget.limit, round_up=False)
        return self._limit_micro

    def _since(self, s: int | None, e: int | None) -> int:
        assert self.reported_at is not None
        after = epoch_us(self.reported_at)  # a window may start before the epoch
        index = self.floors if self.covers_sent else self.commits
        return index.between(after if s is None else max(after, s), e)

    def used(self, now: datetime) -> int:
        """``used_micro(self.usage(now))`` without building the Usage (the reserve path)."""
        start, end = self.budget.window.bounds(now)
        s = None if start is None else epoch_us(start)
        e = None if end is None else epoch_us(end)
        local = self.commits.between(s, e) + self.reserved
        reported = self.reported
        if self.reported_at is None or reported is None:
            return local
        if start is not None and self.reported_at < start:
            return local  # the report predates the window (report_counts)
        return max(local, reported + self._since(s, e) + self.reserved - self.inside)

    def usage(self, now: datetime, in_doubt: int = 0) -> Usage:
        start, end = self.budget.window.bounds(now)
        s = None if start is None else epoch_us(start)
        e = None if end is None else epoch_us(end)
        committed = self.commits.between(s, e)
        if report_counts(self.budget, self.reported_at, now) and self.reported_at is not None:
            return Usage(
                committed,
                self.reserved,
                self.reported,
                self._since(s, e),
                self.outstanding,
                self.reported_at,
                in_doubt,
                self.inside,
                self.covers_sent,
            )
        return Usage(committed, self.reserved, None, 0, self.outstanding, in_doubt=in_doubt)


class BudgetView(Mapping[str, Budget]):
    """The accounts' budgets as a mapping, without copying them on every reserve."""

    __slots__ = ("_accounts",)

    def __init__(self, accounts: dict[str, Account]) -> None:
        self._accounts = accounts

    def __getitem__(self, key: str) -> Budget:
        return self._accounts[key].budget

    def get(self, key: str, default: Budget | None = None) -> Budget | None:  # type: ignore[override]
        account = self._accounts.get(key)
        return default if account is None else account.budget

    def __iter__(self) -> Iterator[str]:
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)
