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

__all__ = ["Account", "BudgetView"]


@attrs.define
class Account:
    """Counters for one budget. Commits are kept sorted by time with running totals, so a
    window sum is two bisects, not a scan."""

    budget: Budget
    reserved: int = 0
    outstanding: int = 0
    commit_times: list[int] = attrs.Factory(list)
    commit_totals: list[int] = attrs.Factory(list)  # running sum after each commit
    reported: int | None = None
    reported_at: datetime | None = None
    _limit_of: Budget | None = attrs.field(default=None, init=False, repr=False)
    _limit_micro: int = attrs.field(default=0, init=False, repr=False)

    def add_commit(self, at: int, amount: int) -> None:
        if not self.commit_times or at >= self.commit_times[-1]:
            self.commit_times.append(at)
            self.commit_totals.append(
                (self.commit_totals[-1] if self.commit_totals else 0) + amount
            )
            return
        # An out-of-order clock: insert and rebuild the running totals (rare).
        i = bisect.bisect_right(self.commit_times, at)
        amounts = [
            b - a for a, b in zip([0, *self.commit_totals], self.commit_totals, strict=False)
        ]
        self.commit_times.insert(i, at)
        amounts.insert(i, amount)
        total, self.commit_totals = 0, []
        for a in amounts:
            total += a
            self.commit_totals.append(total)

    def committed_between(self, start: int | None, end: int | None) -> int:
        totals = self.commit_totals
        if not totals:
            return 0
        if start is not None and end is not None and start >= end:
            return 0  # an empty span (a report dated after the window's end)
        # totals[i - 1] is the sum of the commits before index i.
        hi = len(totals) if end is None else bisect.bisect_left(self.commit_times, end)
        lo = 0 if start is None else bisect.bisect_left(self.commit_times, start)
        return (totals[hi - 1] if hi > 0 else 0) - (totals[lo - 1] if lo > 0 else 0)

    def limit_micro(self) -> int:
        budget = self.budget
        if self._limit_of is not budget:  # put_budget replaced it: convert once per budget
            self._limit_of, self._limit_micro = budget, to_micro(budget.limit, round_up=False)
        return self._limit_micro

    def used(self, now: datetime) -> int:
        """``used_micro(self.usage(now))`` without building the Usage (the reserve path)."""
        start, end = self.budget.window.bounds(now)
        s = None if start is None else epoch_us(start)
        e = None if end is None else epoch_us(end)
        local = self.committed_between(s, e) + self.reserved
        reported = self.reported
        if self.reported_at is None or reported is None:
            return local
        if start is not None and self.reported_at < start:
            return local  # the report predates the window (report_counts)
        after = epoch_us(self.reported_at)
        since = self.committed_between(after if s is None else max(after, s), e)
        return max(local, reported + since + self.reserved)

    def usage(self, now: datetime, in_doubt: int = 0) -> Usage:
        start, end = self.budget.window.bounds(now)
        s = None if start is None else epoch_us(start)
        e = None if end is None else epoch_us(end)
        committed = self.committed_between(s, e)
        if report_counts(self.budget, self.reported_at, now) and self.reported_at is not None:
            after = epoch_us(self.reported_at)  # a window may start before the epoch
            since = self.committed_between(after if s is None else max(after, s), e)
            return Usage(
                committed,
                self.reserved,
                self.reported,
                since,
                self.outstanding,
                self.reported_at,
                in_doubt,
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
