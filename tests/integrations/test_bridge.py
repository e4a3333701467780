"""GuardBridge: SDK threads reach the guard's event loop safely."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetExceeded, InvalidInput
from quotaguard.guard import BudgetGuard
from quotaguard.integrations import BridgeTimeout, GuardBridge, IntegrationError, WrongThread
from quotaguard.ledger.memory import MemoryLedger
from tests._support.guard import Job, ToyAdapter, Work


def toy_guard() -> BudgetGuard:
    return BudgetGuard(MemoryLedger(), adapters=[ToyAdapter()])


async def budgeted(limit: str = "10") -> BudgetGuard:
    guard = toy_guard()
    await guard.add_budget(Budget("toy:device", Unit.USD, Decimal(limit)))
    return guard


async def test_many_threads_at_once_admit_exactly_what_fits() -> None:
    async with await budgeted("10") as guard:
        bridge = GuardBridge.current(guard, timeout=30)
        sent: list[int] = []
        lock = threading.Lock()

        def submit(i: int) -> str:
            def send() -> Job:
                with lock:
                    sent.append(i)
                return Job(f"toy-{i}")

            try:
                return str(bridge.submit(Work(Decimal(1)), send).external_id)
            except BudgetExceeded as exc:
                return exc.decision.violations[0].rule

        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=25) as pool:
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, submit, i) for i in range(60))
            )
        admitted = [r for r in results if r.startswith("toy-")]
        assert len(admitted) == 10 == len(sent)
        assert results.count("budget.remaining") == 50
        held = await guard.ledger.outstanding()
        assert sorted(r.external_id or "" for r in held) == sorted(admitted)


async def test_a_timeout_leaves_the_hold_to_follow_the_send() -> None:
    async with await budgeted() as guard:
        bridge = GuardBridge.current(guard)
        release = threading.Event()

        def slow_send() -> Job:
            release.wait(10)
            return Job("toy-slow")

        with pytest.raises(BridgeTimeout) as info:
            await asyncio.to_thread(bridge.submit, Work(Decimal(3)), slow_send, timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        # The send is still running on its thread and may yet create the job: keep holding.
        (held,) = await guard.ledger.outstanding()
        assert held.external_id is None
        release.set()
        async with asyncio.timeout(5):  # it returned a job: the hold is bound to it
            while (found := await guard.ledger.find_external("toy-slow")) is None:
                await asyncio.sleep(0.01)
        assert found.id == held.id
        with pytest.raises(BridgeTimeout):
            await asyncio.to_thread(bridge.run, asyncio.sleep(5), timeout=0.05)


async def test_the_guards_own_submit_timeout_is_not_relabelled() -> None:
    from quotaguard.errors import SubmitTimeout

    async with await budgeted() as guard:
        guard.submit_timeout = 0.1
        bridge = GuardBridge.current(guard, timeout=5)

        async def hang() -> Job:
            await asyncio.sleep(10)
            return Job("never")

        with pytest.raises(SubmitTimeout):
            await asyncio.to_thread(bridge.submit, Work(Decimal(1)), hang)


async def test_calling_on_the_loop_thread_is_refused_not_deadlocked() -> None:
    async with await budgeted() as guard:
        bridge = GuardBridge.current(guard)
        called: list[bool] = []
        with pytest.raises(WrongThread) as info:
            bridge.submit(Work(Decimal(1)), lambda: called.append(True))
        assert "asyncio.to_thread" in str(info.value) and "GuardBridge.start" in str(info.value)
        assert called == [] and await guard.ledger.outstanding() == []


def test_start_owns_a_background_loop_for_synchronous_code() -> None:
    async def make() -> BudgetGuard:
        return await budgeted("2")

    with GuardBridge.start(make, timeout=10) as bridge:
        assert bridge.submit(Work(Decimal(2)), lambda: Job("toy-1")).external_id == "toy-1"
        with pytest.raises(BudgetExceeded):
            bridge.submit(Work(Decimal(1)), lambda: Job("toy-2"))
        thread = bridge._thread
        assert thread is not None and thread.is_alive()
    assert not thread.is_alive() and bridge.loop.is_closed()
    with pytest.raises(IntegrationError, match="closed"):
        bridge.submit(Work(Decimal(1)), lambda: Job("toy-3"))


def loop_threads() -> set[threading.Thread]:
    """The bridges' loop threads (by name): other tests' threads start and end as they like."""
    return {t for t in threading.enumerate() if t.name.startswith("quotaguard-guard-loop")}


def test_start_with_a_failing_factory_stops_its_thread() -> None:
    before = loop_threads()

    def broken() -> BudgetGuard:
        raise InvalidInput("ledger", "broken on purpose")

    with pytest.raises(InvalidInput):
        GuardBridge.start(broken)
    started = loop_threads() - before
    for thread in started:  # a thread that is ending may need a moment: a bounded wait
        thread.join(timeout=5)
    assert [t for t in started if t.is_alive()] == []


async def test_a_borrowed_loop_is_left_alone_on_close() -> None:
    async with await budgeted() as guard:
        bridge = GuardBridge.current(guard)
        bridge.close()  # not ours: the guard and loop stay usable
        assert not asyncio.get_running_loop().is_closed()
        assert (await guard.check(Work(Decimal(1)))).admitted


async def test_bad_input() -> None:
    guard = toy_guard()
    with pytest.raises(InvalidInput) as info:
        GuardBridge(guard, asyncio.get_running_loop(), timeout=0)
    assert info.value.field == "timeout"
    with pytest.raises(InvalidInput) as info:
        GuardBridge(guard, "loop")  # type: ignore[arg-type]
    assert info.value.field == "loop"
    bridge = GuardBridge.current(guard, timeout=1)
    with pytest.raises(InvalidInput) as info:
        bridge.run(asyncio.sleep(0), timeout=-1)
    assert info.value.field == "timeout"
    await guard.aclose()
