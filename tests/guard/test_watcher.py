"""The watcher: renewals first, in one ledger call; settlements concurrent and bounded.

A provider outage stalls settlement; it must never stall renewal, or the holds of work that is
still running lapse and the budget is spent again (today's watcher renewed one hold at a time,
each after the previous settle attempt: 40 of 40 bound holds lapsed during an outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard import RetryPolicy
from quotaguard.braket.client import BraketClient
from quotaguard.braket.work import BraketTask
from quotaguard.engine.model import Reservation
from quotaguard.guard import BudgetGuard
from quotaguard.ledger import Ledger
from quotaguard.testing import Emulator, FakeClock
from tests._support.braket import FORTE
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget
from tests._support.ledger import FACTORIES, MARKS

BACKENDS = ("memory", "sqlite", "redis")
HOLDS = 40
#: A real-time lease, short enough that a starved renewal shows within a few seconds.
LEASE = timedelta(seconds=3)
ACTION = '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}}'


@pytest.fixture(params=[pytest.param(n, marks=MARKS.get(n, ()), id=n) for n in BACKENDS])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with FACTORIES[request.param](request, tmp_path) as opened:
        yield opened


def utcnow() -> datetime:
    return datetime.now(UTC)


async def test_a_provider_outage_lets_no_bound_hold_lapse_under_a_running_watcher(
    emulator: Emulator, ledger: Ledger
) -> None:
    emulator.braket.add_spending_limit(FORTE, Decimal(1000))
    retry = RetryPolicy(attempts=3, base=0.001, cap=0.005)
    loop = asyncio.get_running_loop()
    async with (
        BraketClient("us-east-1", endpoint_url=emulator.url, timeout=0.25, retry=retry) as braket,
        BudgetGuard(ledger, braket=braket, lease=LEASE, clock=utcnow) as guard,
    ):
        send = functools.partial(braket.create_quantum_task, FORTE, ACTION, 10, "bucket", "prefix")
        arns = [
            (await guard.submit(BraketTask(FORTE, shots=10), send)).external_id
            for _ in range(HOLDS)
        ]
        key = f"braket:{FORTE}"
        # The outage: every task lookup takes longer than the client waits (3 x 0.25 s).
        emulator.faults.add("braket.GetQuantumTask", delay=1.0, times=1_000_000)
        guard.watch(interval=0.05)
        samples, end = 0, loop.time() + 1.5 * LEASE.total_seconds()
        while loop.time() < end:
            await asyncio.sleep(0.1)
            state = await ledger.state(key, now=utcnow())  # leases due by now are swept
            assert state.outstanding == HOLDS, f"{HOLDS - state.outstanding} lapsed"
            samples += 1
        assert await ledger.lapsed() == []
        assert samples >= 10  # fewer on a loaded machine; each is a full check
        # The outage ends and the tasks complete: the same watcher settles every one.
        emulator.faults.clear()
        for arn in arns:
            assert arn is not None
            emulator.braket.complete_task(arn)
        async with asyncio.timeout(20):
            while await ledger.outstanding():
                await asyncio.sleep(0.05)
        state = await ledger.state(key, now=utcnow())
        assert state.committed == HOLDS * Decimal("1.10")  # 0.30 + 10 x 0.08 each


async def test_due_leases_are_renewed_in_one_call_before_any_provider_is_asked(
    ledger: Ledger, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    class Recording(ToyAdapter):
        async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None:
            events.append("actual")
            return None  # still running

    def record(name: str) -> None:
        method = getattr(ledger, name, None)
        if method is None:
            return  # a ledger from before renew_many: its absence shows in the events

        async def wrapper(*args: object, **kwargs: object) -> object:
            events.append(name)
            return await method(*args, **kwargs)

        monkeypatch.setattr(ledger, name, wrapper)

    async with BudgetGuard(ledger, adapters=[Recording()], clock=clock) as guard:
        await add_toy_budget(guard, "1000")
        subs = [
            await guard.submit(Work(Decimal(1)), lambda i=i: Job(f"toy-{i}")) for i in range(HOLDS)
        ]
        record("renew")
        record("renew_many")
        clock.advance(minutes=40)  # under half of the 1 h lease is left on every hold
        assert await guard.watch_once() == 0
    assert events == ["renew_many"] + ["actual"] * HOLDS
    for sub in subs:
        assert (await ledger.get(sub.id)).lease_expires_at == clock() + timedelta(hours=1)


async def test_settlement_runs_eight_at_a_time_each_within_its_timeout(
    clock: FakeClock, tmp_path: Path
) -> None:
    from quotaguard import MemoryLedger

    class Hanging(ToyAdapter):
        running = peak = 0

        async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await asyncio.Event().wait()  # the provider never answers
            finally:
                self.running -= 1
            return None

    hanging = Hanging()
    async with BudgetGuard(MemoryLedger(), adapters=[hanging], clock=clock) as guard:
        await add_toy_budget(guard, "1000")
        for i in range(20):
            await guard.submit(Work(Decimal(1)), lambda i=i: Job(f"toy-{i}"))
        guard._settler.settle_timeout = 0.1
        async with asyncio.timeout(5):
            assert await guard.watch_once() == 0
        assert (hanging.peak, hanging.running) == (8, 0)
        assert len(await guard.ledger.outstanding()) == 20


async def test_a_started_watcher_settles_work_as_it_ends(ledger: Ledger, clock: FakeClock) -> None:
    toy = ToyAdapter()
    async with BudgetGuard(ledger, adapters=[toy], clock=clock) as guard:
        await add_toy_budget(guard)
        sub = await guard.submit(Work(Decimal(4)), lambda: Job("toy-1"))
        task = guard.watch(interval=0.01)
        assert guard.watch(interval=0.01) is task  # started once
        toy.actuals["toy-1"] = Decimal(3)
        async with asyncio.timeout(5):
            while not (await ledger.get(sub.id)).ended:
                await asyncio.sleep(0.01)
        assert (await ledger.state(toy.key, now=clock())).committed == Decimal(3)
    assert task.done()  # aclose stopped it


async def test_the_watcher_stops_even_if_something_below_it_swallows_its_cancellation(
    clock: FakeClock,
) -> None:
    from quotaguard import MemoryLedger

    entered = asyncio.Event()

    class Swallowing(MemoryLedger):
        async def lapsed(self) -> list[Reservation]:
            entered.set()
            # What redis-py 8.1 does to about 1 in 40 cancels of a command in flight.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
            return []

    async with BudgetGuard(Swallowing(), adapters=[ToyAdapter()], clock=clock) as guard:
        task = guard.watch(interval=0.01)
        await asyncio.wait_for(entered.wait(), 5)  # the watcher is inside lapsed()
        async with asyncio.timeout(2):
            await guard.aclose()
    assert task.done()
