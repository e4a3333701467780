"""``within``: a coroutine stepped once before its deadline is armed behaves as if awaited."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from quotaguard import MemoryLedger
from quotaguard.errors import BadRequest
from quotaguard.guard import BudgetGuard
from quotaguard.guard.sending import is_async, within
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget


def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_a_coroutine_that_never_suspends_gives_its_value() -> None:
    async def ready() -> int:
        return 7

    assert await within(ready(), _deadline(5)) == 7


async def test_a_coroutine_that_suspends_is_driven_to_its_end() -> None:
    seen: list[object] = []

    async def steps() -> str:
        await asyncio.sleep(0)  # a bare yield
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, "woken")
        seen.append(await fut)  # a future, resolved from a callback while we wait
        await asyncio.sleep(0)
        return "done"

    assert await within(steps(), _deadline(5)) == "done"
    assert seen == ["woken"]


async def test_an_overrun_after_the_first_step_times_out_and_cancels_the_coroutine() -> None:
    cleaned: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")

    with pytest.raises(TimeoutError):
        await within(slow(), _deadline(0.05))
    assert cleaned == ["finally"]


async def test_cancelling_the_caller_reaches_the_suspended_coroutine() -> None:
    state: list[str] = []
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            state.append("cancelled")
            raise

    async def caller() -> None:
        await within(hang(), _deadline(30))

    task = asyncio.create_task(caller())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert state == ["cancelled"]


async def test_errors_before_and_after_the_first_suspension_propagate() -> None:
    async def at_once() -> None:
        raise ValueError("before")

    async def later() -> None:
        await asyncio.sleep(0)
        raise KeyError("after")

    with pytest.raises(ValueError, match="before"):
        await within(at_once(), _deadline(5))
    with pytest.raises(KeyError, match="after"):
        await within(later(), _deadline(5))


async def test_closing_the_caller_closes_the_stepped_coroutine() -> None:
    cleaned: list[str] = []

    async def inner() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("closed")

    outer = within(inner(), _deadline(30))
    outer.send(None)  # steps inner once; it is now suspended on its sleep
    outer.close()
    assert cleaned == ["closed"]


async def test_awaitables_that_are_not_coroutines_are_awaited_under_the_deadline() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await within(fut, _deadline(0.05))
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    done.set_result(3)
    assert await within(done, _deadline(5)) == 3


def test_is_async_matches_inspect() -> None:
    import functools

    async def a() -> None: ...

    def s() -> None: ...

    class Callable:
        async def __call__(self) -> None: ...

        async def method(self) -> None: ...

    assert is_async(a)
    assert is_async(functools.partial(a))
    assert is_async(Callable().method)
    assert not is_async(s)
    assert not is_async(lambda: a())


async def test_an_async_send_refused_before_or_after_suspending_releases_its_hold(
    toy: ToyAdapter,
    clock,  # type: ignore[no-untyped-def]
) -> None:
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock) as guard:
        await add_toy_budget(guard)

        async def at_once() -> Job:
            raise BadRequest("refused", provider="toy", status=400)

        async def later() -> Job:
            await asyncio.sleep(0)
            raise BadRequest("refused", provider="toy", status=400)

        for send in (at_once, later):
            with pytest.raises(BadRequest):
                await guard.submit(Work(Decimal("1")), send)
            state = await guard.ledger.state("toy:device", now=guard.clock())
            assert state.reserved == Decimal(0)
            assert state.outstanding == 0


async def test_where_each_kind_of_send_runs(
    toy: ToyAdapter,
    clock,  # type: ignore[no-untyped-def]
) -> None:
    import functools
    import threading

    ran_on: list[str] = []

    async def create(job_id: str) -> Job:
        ran_on.append(threading.current_thread().name)
        return Job(job_id)

    def blocking(job_id: str) -> Job:
        ran_on.append(threading.current_thread().name)
        return Job(job_id)

    loop_thread = threading.current_thread().name
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock) as guard:
        await add_toy_budget(guard)
        # A partial of an async function is awaited on the loop, like the README shows.
        a = await guard.submit(Work(Decimal("1")), functools.partial(create, "toy-a"))
        # A plain callable may block: it runs on one of the guard's threads, even a lambda
        # that only returns a coroutine (created there, then awaited on the loop).
        b = await guard.submit(Work(Decimal("1")), functools.partial(blocking, "toy-b"))
        c = await guard.submit(Work(Decimal("1")), lambda: create("toy-c"))
    assert (a.external_id, b.external_id, c.external_id) == ("toy-a", "toy-b", "toy-c")
    assert ran_on[0] == loop_thread
    assert ran_on[1] != loop_thread and ran_on[1].startswith("quotaguard")
    assert ran_on[2] == loop_thread  # the coroutine body itself runs on the loop


async def test_a_send_that_swallows_its_timeout_sees_no_stale_exception() -> None:
    import sys

    seen: list[object] = []

    async def send() -> None:
        try:  # noqa: SIM105 - the except block itself is what is tested
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # swallowed: what an awaited coroutine may do
        seen.append(sys.exc_info()[1])
        raise RuntimeError("after the timeout")

    with pytest.raises(RuntimeError, match="after the timeout") as caught:
        await within(send(), _deadline(0.01))
    assert seen == [None]  # nothing is being handled outside the except block
    assert caught.value.__context__ is None


async def test_a_cancellation_asked_for_in_the_first_step_is_not_a_timeout() -> None:
    async def send() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # in the first step, before any suspension
        await asyncio.sleep(0)

    # The deadline has passed as well: still a cancellation, as with asyncio.timeout.
    with pytest.raises(asyncio.CancelledError):
        await within(send(), _deadline(-1))
