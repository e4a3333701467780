"""Provider state caching when the provider hangs: a typed error, stale state within bounds."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from quotaguard.errors import BudgetUnavailable, ProviderUnavailable
from quotaguard.guard.cache import CachedState
from quotaguard.testing import FakeClock


class Provider:
    def __init__(self) -> None:
        self.hang = False
        self.calls = 0

    async def fetch(self) -> int:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(60)
        return self.calls


def cache(provider: Provider, clock: FakeClock) -> CachedState[int]:
    return CachedState(
        "ibm:crn-x",
        provider.fetch,
        ttl=timedelta(seconds=60),
        max_staleness=timedelta(minutes=10),
        clock=clock,
        timeout=0.05,
    )


async def test_a_hung_refresh_is_a_worded_provider_error(clock: FakeClock) -> None:
    provider = Provider()
    provider.hang = True
    with pytest.raises(ProviderUnavailable) as info:  # what sync() and `status` see
        await cache(provider, clock).refresh()
    assert str(info.value) == "ibm: no answer for ibm:crn-x within 0.05 s"
    assert info.value.provider == "ibm"


async def test_a_hung_refresh_serves_state_younger_than_max_staleness(clock: FakeClock) -> None:
    provider = Provider()
    state = cache(provider, clock)
    assert await state.get() == 1
    provider.hang = True
    clock.advance(minutes=5)  # past the TTL, within max staleness
    assert await state.get() == 1
    clock.advance(minutes=6)  # past max staleness: nothing safe to serve
    with pytest.raises(BudgetUnavailable) as info:
        await state.get()
    assert "(ibm: no answer for ibm:crn-x within 0.05 s)" in str(info.value)
