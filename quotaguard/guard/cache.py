"""Provider state with a TTL: refreshed when stale, one refresh in flight, bounded staleness.

A submission must not cost an HTTP call in steady state, so provider state (IBM usage,
Braket spending limits) is read through this cache. When a refresh fails, the last value is
served until it is older than ``max_staleness``; after that the caller gets
:class:`BudgetUnavailable` and decides (fail closed or open).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from quotaguard.errors import (
    BudgetUnavailable,
    MalformedPayload,
    ProviderError,
    ProviderUnavailable,
    QuotaGuardError,
)
from quotaguard.guard import events

__all__ = ["FUTURE_TOLERANCE", "CachedState", "check_not_future"]

log = logging.getLogger("quotaguard.cache")
T = TypeVar("T")

#: How far ahead of the guard's clock a provider may date its state (clocks differ a little).
FUTURE_TOLERANCE = timedelta(minutes=5)


def check_not_future(when: datetime | None, now: datetime, field: str, provider: str) -> None:
    """State a provider dates later than ``now`` (beyond :data:`FUTURE_TOLERANCE`) is outside
    its domain: a provider error (the fail mode decides), never a fresher report or a credit."""
    if when is not None and when > now + FUTURE_TOLERANCE:
        raise MalformedPayload(
            field,
            f"{provider} dated this {when.isoformat()}, later than now ({now.isoformat()}) by "
            f"more than {FUTURE_TOLERANCE.total_seconds():g} s; state from the future is not used",
            provider=provider,
        )


class CachedState(Generic[T]):
    """One piece of provider state, fetched by ``fetch`` and kept for ``ttl``."""

    def __init__(
        self,
        name: str,
        fetch: Callable[[], Awaitable[T]],
        *,
        ttl: timedelta,
        max_staleness: timedelta,
        clock: Callable[[], datetime],
        timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._fetch = fetch
        self.ttl = ttl
        self.max_staleness = max_staleness
        self._clock = clock
        self._timeout = timeout
        self._value: T | None = None
        self._fetched_at: datetime | None = None
        self._inflight: asyncio.Future[T] | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"CachedState({self.name!r}, fetched_at={self._fetched_at})"

    @property
    def fetched_at(self) -> datetime | None:
        return self._fetched_at

    @property
    def last(self) -> T | None:
        """The last value fetched, however old (None if never fetched)."""
        return self._value

    def invalidate(self) -> None:
        self._fetched_at = None

    def set(self, value: T) -> None:
        self._value, self._fetched_at = value, self._clock()

    async def get(self) -> T:
        now = self._clock()
        if self._fetched_at is not None and now - self._fetched_at < self.ttl:
            return self._value  # type: ignore[return-value]  # set together with _fetched_at
        try:
            return await self.refresh()
        except (ProviderError, TimeoutError) as exc:
            if self._fetched_at is not None and now - self._fetched_at <= self.max_staleness:
                log.debug(
                    "%s: refresh failed (%s); serving state from %s",
                    self.name,
                    type(exc).__name__,
                    self._fetched_at.isoformat(),
                )
                return self._value  # type: ignore[return-value]
            raise BudgetUnavailable(
                f"{self.name}: provider state could not be refreshed "
                f"({str(exc) or type(exc).__name__}) and none newer "
                f"than {self.max_staleness.total_seconds():g} s is cached",
                budget=self.name,
            ) from exc

    async def refresh(self) -> T:
        """Fetch now; concurrent callers share one request."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run())
            # Mark the outcome retrieved even if every waiter was cancelled meanwhile.
            self._inflight.add_done_callback(lambda f: f.cancelled() or f.exception())
        inflight = self._inflight
        # shield: one caller's cancellation must not cancel the fetch the others wait on.
        return await asyncio.shield(inflight)

    async def _run(self) -> T:
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    value = await self._fetch()
            except TimeoutError as exc:
                if isinstance(exc, QuotaGuardError):
                    raise
                # The whole refresh (retries included) overran: a typed, worded error for
                # sync() and status, which call refresh() directly; get() serves stale state
                # for it as for any provider error.
                raise ProviderUnavailable(
                    f"no answer for {self.name} within {self._timeout:g} s",
                    provider=self.name.partition(":")[0],
                ) from exc
            previous = self._fetched_at
            self.set(value)
            self.refreshes += 1
            events.current().refreshed(self.name, previous, self._fetched_at or self._clock())
            return value
        finally:
            self._inflight = None
