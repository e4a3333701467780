"""The guard's provider-neutral flow: reserve, submit, bind, settle, cancel, replay."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest

from quotaguard import (
    Budget,
    BudgetExceeded,
    BudgetUnavailable,
    InvalidInput,
    MemoryLedger,
    ReservationState,
    SQLiteLedger,
    Unit,
)
from quotaguard.errors import BadRequest
from quotaguard.guard import BudgetGuard
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget


@pytest.fixture
async def guard(toy: ToyAdapter, clock):  # type: ignore[no-untyped-def]
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock) as g:
        await add_toy_budget(g)
        yield g


async def held(guard: BudgetGuard, key: str = "toy:device") -> Decimal:
    return (await guard.ledger.state(key, now=guard.clock())).reserved


async def test_admitted_work_is_sent_once_and_bound(guard: BudgetGuard) -> None:
    calls = []

    async def send() -> Job:
        calls.append(1)
        return Job("toy-1")

    sub = await guard.submit(Work(Decimal("4")), send)
    assert calls == [1]
    assert sub.external_id == "toy-1"
    assert sub.reservation.external_id == "toy-1"
    assert await held(guard) == Decimal("4")


async def test_over_budget_work_is_never_sent(guard: BudgetGuard) -> None:
    await guard.submit(Work(Decimal("7")), lambda: Job("toy-1"))
    sent = []
    with pytest.raises(BudgetExceeded) as info:
        await guard.submit(Work(Decimal("4")), lambda: sent.append(1))
    assert sent == []
    (violation,) = info.value.decision.violations
    assert violation.rule == "budget.remaining"
    assert violation.budget == "toy:device"
    assert violation.requested == Decimal("4")
    assert violation.remaining == Decimal("3")
    assert "3 USD left of 10 USD" in str(info.value)
    assert info.value.source == "local"
    assert await held(guard) == Decimal("7")


async def test_static_violation_rejects_before_reserving(guard: BudgetGuard) -> None:
    with pytest.raises(BudgetExceeded) as info:
        await guard.submit(Work(Decimal("1"), bad=True), lambda: pytest.fail("sent"))
    assert info.value.decision.rules == ("toy.bad",)
    assert await held(guard) == 0


async def test_a_provider_refusal_releases_and_propagates(guard: BudgetGuard) -> None:
    async def boom() -> None:
        raise BadRequest("provider said no", provider="toy", status=400)

    with pytest.raises(BadRequest, match="provider said no"):
        await guard.submit(Work(Decimal("5")), boom)
    assert await held(guard) == 0
    assert await guard.ledger.outstanding() == []


async def test_a_submission_cancelled_mid_send_keeps_its_hold_in_doubt(guard: BudgetGuard) -> None:
    started = asyncio.Event()

    async def slow() -> Job:
        started.set()
        await asyncio.sleep(3600)
        return Job("toy-never")

    task = asyncio.create_task(guard.submit(Work(Decimal("5")), slow))
    await started.wait()
    assert await held(guard) == Decimal("5")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The send had started: it may have reached the provider. (Until issue 11 this released.)
    assert await held(guard) == Decimal("5")
    [doubtful] = await guard.in_doubt()
    assert doubtful.external_id is None


async def test_sync_submit_runs_in_a_thread(guard: BudgetGuard) -> None:
    loop_thread = threading.get_ident()
    seen = []

    def send() -> Job:
        seen.append(threading.get_ident())
        return Job("toy-2")

    sub = await guard.submit(Work(Decimal("1")), send)
    assert sub.external_id == "toy-2"
    assert seen and seen[0] != loop_thread


async def test_same_idempotency_key_concurrently_reserves_and_sends_once(
    guard: BudgetGuard,
) -> None:
    sent = []

    async def send() -> Job:
        sent.append(1)
        await asyncio.sleep(0.01)
        return Job("toy-3")

    subs = await asyncio.gather(
        *(guard.submit(Work(Decimal("2")), send, idempotency_key="run-42") for _ in range(10))
    )
    assert sent == [1]
    assert len({s.id for s in subs}) == 1
    assert sum(s.replayed for s in subs) == 9
    assert await held(guard) == Decimal("2")
    # A later retry with the same key is answered from the ledger, not sent again.
    again = await guard.submit(Work(Decimal("2")), send, idempotency_key="run-42")
    assert again.replayed and again.id == subs[0].id and sent == [1]


async def test_fail_closed_and_open(toy: ToyAdapter, clock, caplog) -> None:  # type: ignore[no-untyped-def]
    toy.available = False
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock) as closed:
        await add_toy_budget(closed)
        with pytest.raises(BudgetUnavailable):
            await closed.submit(Work(Decimal("1")), lambda: pytest.fail("sent"))
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock, fail_mode="open") as g:
        sub = await g.submit(Work(Decimal("1")), lambda: Job("toy-4"))
        assert sub.external_id == "toy-4"


async def test_settle_commits_actual_exactly_once(guard: BudgetGuard, toy: ToyAdapter) -> None:
    sub = await guard.submit(Work(Decimal("6")), lambda: Job("toy-5"))
    # Not finished yet: stays held.
    still = await guard.settle(sub)
    assert still.state is ReservationState.HELD
    toy.actuals["toy-5"] = Decimal("2.5")
    done = await guard.settle("toy-5")
    assert done.state is ReservationState.COMMITTED
    state = await guard.ledger.state("toy:device", now=guard.clock())
    assert (state.committed, state.reserved) == (Decimal("2.5"), 0)
    toy.actuals["toy-5"] = Decimal("9")
    again = await guard.settle(sub)
    assert again == done
    assert (await guard.ledger.state("toy:device", now=guard.clock())).committed == Decimal("2.5")


async def test_settle_with_explicit_actual_and_watch(guard: BudgetGuard, toy: ToyAdapter) -> None:
    a = await guard.submit(Work(Decimal("3")), lambda: Job("toy-a"))
    b = await guard.submit(Work(Decimal("3")), lambda: Job("toy-b"))
    assert (await guard.settle(a, actual=Decimal("1"))).state is ReservationState.COMMITTED
    toy.actuals["toy-b"] = Decimal(0)
    assert await guard.watch_once() == 1
    assert (await guard.ledger.get(b.id)).state is ReservationState.COMMITTED
    state = await guard.ledger.state("toy:device", now=guard.clock())
    assert (state.committed, state.reserved) == (Decimal("1"), 0)


async def test_user_budgets_are_charged_in_the_same_reservation(guard: BudgetGuard) -> None:
    await guard.add_budget(Budget("team:research", Unit.USD, Decimal("5")))
    await guard.submit(Work(Decimal("4")), lambda: Job("toy-6"), budgets=["team:research"])
    with pytest.raises(BudgetExceeded) as info:
        await guard.submit(Work(Decimal("2")), lambda: Job("toy-7"), budgets=["team:research"])
    assert [v.budget for v in info.value.decision.violations] == ["team:research"]
    # All or nothing: the provider budget had room but holds nothing for the rejected work.
    assert await held(guard) == Decimal("4")


async def test_unknown_or_unconvertible_budget_is_bad_input(guard: BudgetGuard) -> None:
    with pytest.raises(InvalidInput) as info:
        await guard.submit(Work(Decimal("1")), lambda: pytest.fail("sent"), budgets=["team:x"])
    assert info.value.field == "budgets[0]"
    await guard.add_budget(Budget("team:secs", Unit.SECONDS, Decimal("5")))
    with pytest.raises(InvalidInput, match="counts seconds"):
        await guard.submit(Work(Decimal("1")), lambda: pytest.fail("sent"), budgets=["team:secs"])
    with pytest.raises(InvalidInput, match="sequence"):
        await guard.submit(Work(Decimal("1")), lambda: pytest.fail("sent"), budgets="team:x")  # type: ignore[arg-type]
    assert await held(guard) == 0


async def test_check_has_no_side_effects(guard: BudgetGuard) -> None:
    ok = await guard.check(Work(Decimal("10")))
    assert ok.admitted and ok.reservation is None
    no = await guard.check(Work(Decimal("11")))
    assert not no.admitted and no.rules == ("budget.remaining",)
    assert await held(guard) == 0


async def test_work_without_a_provider_is_bad_input(guard: BudgetGuard) -> None:
    with pytest.raises(InvalidInput, match="no provider is configured for str"):
        await guard.submit("a circuit", lambda: None)


async def test_default_ledger_is_sqlite_in_the_user_state_dir(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    async with BudgetGuard() as guard:
        assert isinstance(guard.ledger, SQLiteLedger)
        assert str(guard.ledger.path).startswith(str(tmp_path))
        await guard.add_budget(Budget("team:a", Unit.USD, Decimal("1")))
        assert [s.key for s in await guard.status()] == ["team:a"]


async def test_settle_after_lease_expiry_still_records_the_cost(
    guard: BudgetGuard, toy: ToyAdapter, clock
) -> None:  # type: ignore[no-untyped-def]
    sub = await guard.submit(Work(Decimal("4")), lambda: Job("toy-late"))
    clock.advance(hours=2)  # past the 1 h lease: the hold lapses
    assert await held(guard) == 0
    toy.actuals["toy-late"] = Decimal("3")
    done = await guard.settle(sub)
    assert done.state is ReservationState.COMMITTED
    assert (await guard.ledger.state("toy:device", now=clock())).committed == Decimal("3")


async def test_watch_settles_the_rest_when_one_job_fails_to_settle(
    guard: BudgetGuard, toy: ToyAdapter
) -> None:
    await guard.submit(Work(Decimal("1")), lambda: Job("toy-broken"))
    ok = await guard.submit(Work(Decimal("1")), lambda: Job("toy-fine"))
    original = toy.actual

    async def actual(external_id: str, reserved: Decimal) -> Decimal | None:
        if external_id == "toy-broken":
            raise BudgetUnavailable("provider hiccup")
        return await original(external_id, reserved)

    toy.actual = actual  # type: ignore[method-assign]
    toy.actuals["toy-fine"] = Decimal("1")
    assert await guard.watch_once() == 1
    assert (await guard.ledger.get(ok.id)).state is ReservationState.COMMITTED


async def test_submit_timeout_is_a_quotaguard_error(toy: ToyAdapter, clock) -> None:  # type: ignore[no-untyped-def]
    from quotaguard.errors import QuotaGuardError, SubmitTimeout

    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock,
                           submit_timeout=0.05) as guard:  # fmt: skip
        await add_toy_budget(guard)

        async def hang() -> None:
            await asyncio.sleep(10)

        with pytest.raises(SubmitTimeout) as info:
            await guard.submit(Work(Decimal("2")), hang)
        assert isinstance(info.value, QuotaGuardError)
        assert isinstance(info.value, TimeoutError)
