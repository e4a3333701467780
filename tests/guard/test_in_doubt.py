"""Sends in doubt: when the guard cannot know whether work was sent, it keeps the hold.

Provably unsent work (the send never invoked, our client failing before it wrote the request,
a provider's definite refusal) is released at once. Every other unfinished send is *in doubt*:
held, marked, listed, its idempotency key claimed, until the watcher resolves it. The budget is
100 USD and the work 80.30 USD, so a second admission of the same work is exactly what an
undercount lets through (today's code sent 2 x 80.30 = 160.60 on 100 in these cases).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quotaguard import Budget, BudgetExceeded, InvalidInput, ReservationState, Unit
from quotaguard._http import HTTPClient
from quotaguard.engine.model import Decision, Reservation
from quotaguard.errors import (
    BadRequest,
    MalformedPayload,
    ProviderError,
    ProviderUnavailable,
    SubmitTimeout,
    Throttled,
)
from quotaguard.guard import BudgetGuard
from quotaguard.ledger import Ledger
from quotaguard.testing import Emulator, FakeClock
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget
from tests._support.ledger import FACTORIES, MARKS

KEY = "toy:device"
PRICE = Decimal("80.30")
LIMIT = Decimal(100)
HOUR = timedelta(hours=1)
#: The backends whose ledgers implement the in-doubt contract.
BACKENDS = ("memory", "sqlite", "redis")


@pytest.fixture(params=[pytest.param(n, marks=MARKS.get(n, ()), id=n) for n in BACKENDS])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with FACTORIES[request.param](request, tmp_path) as opened:
        yield opened


@pytest.fixture
async def guard(ledger: Ledger, toy: ToyAdapter, clock: FakeClock) -> AsyncIterator[BudgetGuard]:
    # Long enough for a sync send's thread on a loaded 2-core machine (0.2 s timed out a
    # plain accept() there), short enough for the tests that wait for a hung send.
    async with BudgetGuard(ledger, adapters=[toy], clock=clock, submit_timeout=1.5) as g:
        await add_toy_budget(g, str(LIMIT))
        yield g


class Provider:
    """The fake provider behind the sends: the jobs it accepted, in order."""

    def __init__(self) -> None:
        self.accepted: list[str] = []

    def accept(self) -> Job:
        job = Job(f"toy-{len(self.accepted) + 1}")
        self.accepted.append(job.id)
        return job


@pytest.fixture
def provider() -> Provider:
    return Provider()


async def reserved(guard: BudgetGuard) -> Decimal:
    return (await guard.ledger.state(KEY, now=guard.clock())).reserved


async def only(guard: BudgetGuard) -> Reservation:
    [held] = await guard.ledger.outstanding()
    return held


async def followups_done(guard: BudgetGuard) -> None:
    """Wait until the sender's follow-ups (of sends that outlived their caller) have run."""
    await asyncio.sleep(0.05)
    async with asyncio.timeout(5):
        while guard._sender._followups:
            await asyncio.sleep(0.01)


async def refused_again(guard: BudgetGuard, provider: Provider) -> None:
    """The same work once more: the in-doubt hold still counts, so it does not fit."""
    with pytest.raises(BudgetExceeded):
        await guard.submit(Work(PRICE), provider.accept)
    assert await reserved(guard) == PRICE  # 80.30 held on 100, never 160.60 sent


# -- provably unsent: released at once ------------------------------------------------------


async def _takes_an_argument(provider: Provider, job: str) -> Job:
    return provider.accept()


def _raising(error: Callable[[], BaseException]) -> Callable[[Provider], Callable[[], Any]]:
    def make(provider: Provider) -> Callable[[], Awaitable[Job]]:
        async def send() -> Job:
            await asyncio.sleep(0)
            raise error()

        return send

    return make


UNSENT: dict[str, Callable[[Provider], Callable[[], Any]]] = {
    # Calling it fails before its body runs: the coroutine was never created.
    "never-invoked": lambda p: functools.partial(_takes_an_argument, p),
    "connection-refused": _raising(
        lambda: ProviderUnavailable("refused", provider="toy", request_sent=False)
    ),
    "bad-request-400": _raising(lambda: BadRequest("no", provider="toy", status=400)),
    "throttled-429": _raising(lambda: Throttled("slow down", provider="toy", status=429)),
    "over-the-server-limit": _raising(lambda: BudgetExceeded(Decision.reject([]), source="server")),
}


@pytest.mark.parametrize("case", UNSENT)
async def test_provably_unsent_work_is_released_at_once(
    guard: BudgetGuard, provider: Provider, case: str
) -> None:
    with pytest.raises((TypeError, ProviderError, BudgetExceeded)):
        await guard.submit(Work(PRICE), UNSENT[case](provider), idempotency_key="k")
    assert provider.accepted == []
    assert await reserved(guard) == 0
    assert await guard.ledger.outstanding() == []
    # The key is free again: the retry sends.
    sub = await guard.submit(Work(PRICE), provider.accept, idempotency_key="k")
    assert not sub.replayed and provider.accepted == ["toy-1"]


async def test_a_sync_send_still_queued_for_a_thread_is_released(
    guard: BudgetGuard, provider: Provider
) -> None:
    gate = threading.Event()
    guard._sender._executor._max_workers = 1  # one send thread, kept busy below
    blocker = asyncio.ensure_future(
        guard.submit(Work(Decimal(1)), lambda: (gate.wait(5), provider.accept())[1])
    )
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(guard.submit(Work(Decimal(2)), provider.accept))
    await asyncio.sleep(0.05)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert await reserved(guard) == Decimal(1)  # only the running send still holds
    gate.set()
    assert (await blocker).external_id == "toy-1"
    assert provider.accepted == ["toy-1"]


# -- in doubt: the hold stays, marked, listed -----------------------------------------------


def _accepting_then(error: BaseException) -> Callable[[Provider], Callable[[], Any]]:
    def make(provider: Provider) -> Callable[[], Awaitable[Job]]:
        async def send() -> Job:
            provider.accept()
            await asyncio.sleep(0)
            raise error

        return send

    return make


def _sync_accepting_then(error: BaseException) -> Callable[[Provider], Callable[[], Any]]:
    def make(provider: Provider) -> Callable[[], Job]:
        def send() -> Job:
            provider.accept()
            raise error

        return send

    return make


IN_DOUBT: dict[str, Callable[[Provider], Callable[[], Any]]] = {
    "custom-error-after-invoke": _accepting_then(RuntimeError("the SDK failed late")),
    "reply-503": _accepting_then(ProviderUnavailable("down", provider="toy", status=503)),
    "reply-lost": _accepting_then(ProviderUnavailable("connection reset", provider="toy")),
    "reply-malformed": _accepting_then(MalformedPayload("$.id", "not a str", provider="toy")),
    "sync-send-raising": _sync_accepting_then(RuntimeError("the SDK failed late")),
}


@pytest.mark.parametrize("case", IN_DOUBT)
async def test_a_send_that_failed_after_it_was_invoked_stays_held_in_doubt(
    guard: BudgetGuard, provider: Provider, case: str
) -> None:
    with pytest.raises(Exception):  # each case raises its own error, unchanged
        await guard.submit(Work(PRICE), IN_DOUBT[case](provider))
    assert provider.accepted == ["toy-1"]
    assert await reserved(guard) == PRICE
    [doubtful] = await guard.in_doubt()
    assert doubtful.in_doubt and doubtful.in_doubt_since == guard.clock()
    [state] = await guard.status()
    assert (state.outstanding, state.in_doubt) == (1, 1)
    await refused_again(guard, provider)


async def test_an_async_send_cancelled_after_the_provider_accepted_keeps_its_hold(
    guard: BudgetGuard, provider: Provider
) -> None:
    async def send() -> Job:
        job = provider.accept()
        await asyncio.Event().wait()  # the reply never comes before the cancellation
        return job

    task = asyncio.ensure_future(guard.submit(Work(PRICE), send))
    async with asyncio.timeout(5):
        while not provider.accepted:
            await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await refused_again(guard, provider)
    assert provider.accepted == ["toy-1"]
    assert (await only(guard)).in_doubt


async def test_a_timed_out_send_says_its_hold_stays_in_doubt(
    guard: BudgetGuard, provider: Provider
) -> None:
    async def hang() -> Job:
        provider.accept()
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    with pytest.raises(SubmitTimeout) as info:
        await guard.submit(Work(PRICE), hang)
    assert "in doubt" in str(info.value)
    held = await guard.ledger.get(info.value.reservation_id or "")
    assert held.in_doubt and held.state is ReservationState.HELD
    await refused_again(guard, provider)
    released = await guard.release(info.value.reservation_id or "")
    assert released.state is ReservationState.RELEASED
    assert await guard.in_doubt() == []
    assert await reserved(guard) == 0


@pytest.mark.parametrize("returns_id", [False, True], ids=["no-id", "job-id"])
@pytest.mark.parametrize("interrupt", ["cancel", "timeout"])
async def test_a_sync_send_finishing_after_its_caller_left(
    guard: BudgetGuard, provider: Provider, interrupt: str, returns_id: bool
) -> None:
    started, gate = threading.Event(), threading.Event()

    def send() -> Job | str:
        started.set()
        gate.wait(5)
        job = provider.accept()
        return job if returns_id else "accepted"  # no id the adapter recognises

    task = asyncio.ensure_future(guard.submit(Work(PRICE), send))
    await asyncio.to_thread(started.wait, 5)
    if interrupt == "cancel":
        task.cancel()
    with pytest.raises(asyncio.CancelledError if interrupt == "cancel" else SubmitTimeout):
        await task
    assert await reserved(guard) == PRICE  # still running on its thread: in doubt
    gate.set()
    await followups_done(guard)
    await refused_again(guard, provider)
    held = await only(guard)
    if returns_id:
        assert (held.external_id, held.in_doubt) == ("toy-1", False)
        assert held.sent_at == guard.clock()
    else:
        assert held.external_id is None and held.in_doubt


async def test_a_retry_with_the_same_key_replays_an_in_doubt_hold(
    guard: BudgetGuard, provider: Provider
) -> None:
    async def send() -> Job:
        provider.accept()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    first = asyncio.ensure_future(guard.submit(Work(PRICE), send, idempotency_key="order-7"))
    async with asyncio.timeout(5):
        while not provider.accepted:
            await asyncio.sleep(0.005)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    retry = await guard.submit(Work(PRICE), provider.accept, idempotency_key="order-7")
    assert retry.replayed and retry.result is None
    assert provider.accepted == ["toy-1"]  # sent once under one key
    assert await reserved(guard) == PRICE


# -- sent but not bound: in doubt, renewed, listed, key claimed ----------------------------


async def _fail_bind(*args: object, **kwargs: object) -> Reservation:
    from quotaguard.errors import BudgetUnavailable

    raise BudgetUnavailable("ledger busy")


@pytest.mark.parametrize("why", ["no-id", "bind-failed"])
async def test_a_hold_the_guard_could_not_bind_is_renewed_and_keeps_its_key(
    guard: BudgetGuard,
    provider: Provider,
    clock: FakeClock,
    why: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    send: Callable[[], object] = provider.accept
    if why == "no-id":
        send = lambda: (provider.accept(), "accepted")[1]  # noqa: E731
    else:
        monkeypatch.setattr(guard.ledger, "bind", _fail_bind)
    sub = await guard.submit(Work(PRICE), send, idempotency_key="order-8")
    monkeypatch.undo()
    # A running watcher renews it past its first lease (1 h): 80 minutes later it still holds.
    for _ in range(2):
        clock.advance(minutes=40)
        await guard.watch_once()
    assert await guard.ledger.expire(now=clock()) == 0
    held = await guard.ledger.get(sub.id)
    assert held.state is ReservationState.HELD and held.lease_expires_at == clock() + HOUR
    retry = await guard.submit(Work(PRICE), provider.accept, idempotency_key="order-8")
    assert retry.replayed
    assert provider.accepted == ["toy-1"]  # sent once under one key
    await refused_again(guard, provider)
    assert [r.id for r in await guard.in_doubt()] == [sub.id]


# -- resolution by the watcher ----------------------------------------------------------------


async def watch_until(guard: BudgetGuard, clock: FakeClock, end: datetime) -> int:
    """A watcher running every 20 minutes until ``end``; how many it settled."""
    settled = 0
    while clock() < end:
        clock.now = min(end, clock() + timedelta(minutes=20))
        settled += await guard.watch_once()
    return settled


async def _in_doubt_at_once(guard: BudgetGuard, provider: Provider, **kwargs: Any) -> Reservation:
    with pytest.raises(RuntimeError):
        await guard.submit(Work(PRICE), _accepting_then(RuntimeError("late"))(provider), **kwargs)
    assert await reserved(guard) == PRICE
    [held] = await guard.in_doubt()
    return held


async def test_a_custom_send_in_doubt_is_released_after_a_report_dated_past_its_lease(
    guard: BudgetGuard, provider: Provider, clock: FakeClock
) -> None:
    held = await _in_doubt_at_once(guard, provider)
    start = clock()
    clock.advance(minutes=40)
    assert await guard.watch_once() == 0  # renewed: less than half its lease was left
    # A report read before the lease ended may not carry the work yet: it is no evidence.
    await guard.ledger.record_report(KEY, 0, at=start + timedelta(minutes=59))
    clock.advance(minutes=25)
    assert await guard.watch_once() == 0
    assert await reserved(guard) == PRICE
    # The provider's report read after the lease ended carries the work (it was sent).
    await guard.ledger.record_report(KEY, PRICE, at=start + HOUR + timedelta(seconds=1))
    assert await guard.watch_once() == 1
    done = await guard.ledger.get(held.id)
    assert done.state is ReservationState.RELEASED
    state = await guard.ledger.state(KEY, now=clock())
    assert (state.reserved, state.used) == (0, PRICE)  # counted by the report, once
    await refused_again_by_report(guard, provider)


async def refused_again_by_report(guard: BudgetGuard, provider: Provider) -> None:
    with pytest.raises(BudgetExceeded):
        await guard.submit(Work(PRICE), provider.accept)
    assert provider.accepted == ["toy-1"]


async def test_an_in_doubt_hold_on_an_unreported_budget_is_committed_after_max_in_doubt(
    guard: BudgetGuard, provider: Provider, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await guard.add_budget(Budget("team:a", Unit.USD, LIMIT))
    held = await _in_doubt_at_once(guard, provider, budgets=["team:a"])
    start = clock()
    # The provider's budget gets a report past the lease; the team budget never can.
    await guard.ledger.record_report(KEY, PRICE, at=start + HOUR + timedelta(seconds=1))
    assert await watch_until(guard, clock, start + timedelta(hours=2)) == 0
    assert (await guard.ledger.state("team:a", now=clock())).reserved == PRICE
    with caplog.at_level(logging.WARNING, logger="quotaguard.guard"):
        assert await watch_until(guard, clock, start + guard.max_in_doubt) == 1
    assert "longer than max_in_doubt" in caplog.text
    done = await guard.ledger.get(held.id)
    assert done.state is ReservationState.COMMITTED
    assert (await guard.ledger.state("team:a", now=clock())).committed == PRICE


async def test_an_in_doubt_hold_that_lapsed_unwatched_is_listed_and_resolved(
    guard: BudgetGuard, provider: Provider, clock: FakeClock
) -> None:
    held = await _in_doubt_at_once(guard, provider)
    start = clock()
    clock.advance(hours=2)  # nobody watched: the lease ran out
    assert await guard.ledger.expire(now=clock()) == 1
    assert [r.id for r in await guard.ledger.lapsed()] == [held.id]
    assert await guard.watch_once() == 0  # no evidence yet: it stays listed
    await guard.ledger.record_report(KEY, PRICE, at=start + HOUR + timedelta(seconds=1))
    assert await guard.watch_once() == 1
    assert await guard.ledger.lapsed() == []
    done = await guard.ledger.get(held.id)
    assert done.state is ReservationState.COMMITTED
    assert done.actual is not None and [c.amount for c in done.actual] == [0]


async def test_work_an_adapter_finds_is_bound_and_settled(
    ledger: Ledger, provider: Provider, clock: FakeClock
) -> None:
    class Finder(ToyAdapter):
        async def find_sent(self, reservation: Reservation) -> str | None:
            return provider.accepted[0] if provider.accepted else None

    finder = Finder()
    async with BudgetGuard(ledger, adapters=[finder], clock=clock) as guard:
        await add_toy_budget(guard, str(LIMIT))
        held = await _in_doubt_at_once(guard, provider)
        finder.actuals["toy-1"] = Decimal(50)
        assert await guard.watch_once() == 1
        done = await guard.ledger.get(held.id)
        assert (done.state, done.external_id) == (ReservationState.COMMITTED, "toy-1")
        assert (await guard.ledger.state(KEY, now=clock())).committed == Decimal(50)


async def test_max_in_doubt_is_checked(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput) as info:
        BudgetGuard(ledger, lease=HOUR, max_in_doubt=timedelta(minutes=5))
    assert info.value.field == "max_in_doubt"


# -- our own client says whether it wrote the request ---------------------------------------


async def test_a_refused_connection_is_unsent_and_a_reply_is_sent(emulator: Emulator) -> None:
    async with HTTPClient(provider="toy", timeout=0.2) as http:
        with pytest.raises(ProviderUnavailable) as refused:
            await http.request("POST", "http://127.0.0.1:9/jobs", idempotent=False)
        assert refused.value.request_sent is False
        emulator.faults.add("ibm.get_usage", delay=1.0)
        with pytest.raises(ProviderUnavailable) as lost:
            await http.request("GET", f"{emulator.url}/api/v1/instances/usage", idempotent=False)
        assert lost.value.request_sent is None  # written, no reply in time: unknown
    assert ProviderUnavailable("x", provider="toy", status=503).request_sent is True
    assert BadRequest("x", provider="toy", status=400).request_sent is True
    assert MalformedPayload("$.id", "x", provider="toy").request_sent is None


async def test_a_send_through_our_client_to_a_closed_port_holds_nothing(
    guard: BudgetGuard,
) -> None:
    async with HTTPClient(provider="toy", timeout=0.5) as http:

        async def send() -> Job:
            await http.request("POST", "http://127.0.0.1:9/jobs", idempotent=False)
            raise AssertionError("unreachable")

        with pytest.raises(ProviderUnavailable):
            await guard.submit(Work(PRICE), send)
    assert await guard.ledger.outstanding() == []
