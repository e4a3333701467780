"""What happens to a hold when the send times out, is cancelled, or its bind fails."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard import BudgetUnavailable, InvalidInput, MemoryLedger, ReservationState
from quotaguard.errors import BadRequest, SubmitTimeout
from quotaguard.guard import BudgetGuard
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget


async def held(guard: BudgetGuard) -> Decimal:
    return (await guard.ledger.state("toy:device", now=guard.clock())).reserved


@pytest.fixture
async def guard(toy: ToyAdapter, clock):  # type: ignore[no-untyped-def]
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock, submit_timeout=0.2) as g:
        await add_toy_budget(g)
        yield g


async def test_async_send_that_times_out_keeps_its_hold_until_released(
    guard: BudgetGuard,
) -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    with pytest.raises(SubmitTimeout) as info:
        await guard.submit(Work(Decimal("3")), hang)
    assert info.value.reservation_id is not None
    assert "may have reached the provider" in str(info.value)
    assert await held(guard) == Decimal("3")  # it may have been sent: never count it as 0
    released = await guard.release(info.value.reservation_id)
    assert released.state is ReservationState.RELEASED
    assert await held(guard) == 0


async def test_sync_send_outliving_its_timeout_is_bound_when_it_returns(
    guard: BudgetGuard,
) -> None:
    gate = threading.Event()

    def slow_send() -> Job:
        gate.wait(5)
        return Job("toy-slow")

    with pytest.raises(SubmitTimeout) as info:
        await guard.submit(Work(Decimal("2")), slow_send)
    assert await held(guard) == Decimal("2")
    gate.set()
    async with asyncio.timeout(5):
        while (found := await guard.ledger.find_external("toy-slow")) is None:
            await asyncio.sleep(0.01)
    assert found.id == info.value.reservation_id
    assert found.state is ReservationState.HELD


async def test_sync_send_cancelled_then_refused_by_the_provider_is_released(
    guard: BudgetGuard,
) -> None:
    started, gate = threading.Event(), threading.Event()

    def failing_send() -> Job:
        started.set()
        gate.wait(5)
        raise BadRequest("the provider refused", provider="toy", status=400)

    task = asyncio.create_task(guard.submit(Work(Decimal("2")), failing_send))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await held(guard) == Decimal("2")  # the thread may still send: keep holding
    gate.set()
    async with asyncio.timeout(5):
        while await held(guard) != 0:
            await asyncio.sleep(0.01)


async def test_a_duplicate_key_for_different_work_is_refused(guard: BudgetGuard) -> None:
    gate = asyncio.Event()

    async def send() -> Job:
        await gate.wait()
        return Job("toy-a")

    first = asyncio.create_task(guard.submit(Work(Decimal("1")), send, idempotency_key="k"))
    await asyncio.sleep(0)
    with pytest.raises(InvalidInput) as info:
        await guard.submit(Work(Decimal("2")), send, idempotency_key="k")
    assert info.value.field == "idempotency_key"
    gate.set()
    assert (await first).external_id == "toy-a"


async def test_a_duplicate_replays_the_hold_when_the_first_caller_is_cancelled(
    guard: BudgetGuard,
) -> None:
    calls: list[str] = []

    async def send() -> Job:
        calls.append("sent")
        await asyncio.sleep(0.05 if len(calls) == 1 else 0)
        return Job(f"toy-{len(calls)}")

    first = asyncio.create_task(guard.submit(Work(Decimal("1")), send, idempotency_key="k"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(guard.submit(Work(Decimal("1")), send, idempotency_key="k"))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    sub = await second
    assert not second.cancelled()
    # The first send was cancelled mid-flight: in doubt, its key still claimed, so the
    # duplicate replays that hold rather than send again. (Until issue 11 it sent "toy-2".)
    assert sub.replayed and calls == ["sent"]
    assert await held(guard) == Decimal("1")


async def test_a_failed_bind_does_not_fail_work_that_was_sent(
    toy: ToyAdapter, clock, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    class FlakyBind(MemoryLedger):
        failures = 5

        async def bind(self, reservation_id: str, external_id: str, **kwargs):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                raise BudgetUnavailable("ledger busy")
            return await super().bind(reservation_id, external_id, **kwargs)

    async with BudgetGuard(FlakyBind(), adapters=[toy], clock=clock) as guard:
        await add_toy_budget(guard)
        sub = await guard.submit(Work(Decimal("1")), lambda: Job("toy-sent"))
        assert sub.external_id == "toy-sent"  # the caller learns the job id all the same
        assert sub.reservation.external_id is None
        assert sub.reservation.in_doubt  # sent but not bound: held, renewed, listed
        assert "stays unbound" in caplog.text
        settled = await guard.settle(sub, actual=Decimal("1"))
        assert settled.state is ReservationState.COMMITTED


async def test_a_budget_named_twice_is_bad_input(guard: BudgetGuard) -> None:
    with pytest.raises(InvalidInput) as info:
        await guard.submit(Work(Decimal("1")), lambda: pytest.fail("sent"), budgets=["toy:device"])
    assert info.value.field == "budgets[0]"
    assert await held(guard) == 0


async def test_unmetered_work_settles_to_its_empty_reservation(toy: ToyAdapter, clock) -> None:  # type: ignore[no-untyped-def]
    toy.available = False  # the toy provider then draws nothing
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock, fail_mode="open") as g:
        sub = await g.submit(Work(Decimal("1")), lambda: Job("toy-free"))
        assert await g.settle(sub) is sub.reservation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"submit_timeout": 0}, "submit_timeout"),
        ({"submit_timeout": float("inf")}, "submit_timeout"),
        ({"submit_timeout": True}, "submit_timeout"),
        ({"lease": timedelta(0)}, "lease"),
        ({"lease": timedelta(days=999)}, "lease"),
        ({"fail_mode": "maybe"}, "fail_mode"),
    ],
)
async def test_bad_guard_settings_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        BudgetGuard(MemoryLedger(), **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


async def test_a_naive_clock_is_refused() -> None:
    from datetime import datetime

    with pytest.raises(InvalidInput) as info:
        BudgetGuard(MemoryLedger(), clock=datetime.now)
    assert info.value.field == "clock()"
