"""Braket simulator durations and Braket Direct reservation tasks, end to end through
``BudgetGuard``, our client and the emulator (issue 12, items 13 and 14)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard.braket.client import BraketClient
from quotaguard.braket.rules import RULE_MAX_DURATION_UNSET
from quotaguard.braket.work import BraketTask
from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetExceeded, InvalidInput
from quotaguard.guard import BudgetGuard
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.testing import Emulator, FakeClock
from tests._support.aws import botocore_session
from tests._support.braket import ACTION, FORTE, KEY, SV1

TEAM = "team:sim"


@pytest.fixture
async def braket(emulator: Emulator) -> AsyncIterator[BraketClient]:
    async with BraketClient(
        "us-east-1", endpoint_url=emulator.url, botocore_session=botocore_session(), timeout=2
    ) as client:
        yield client


@pytest.fixture
async def guard(braket: BraketClient, clock: FakeClock) -> AsyncIterator[BudgetGuard]:
    async with BudgetGuard(MemoryLedger(), braket=braket, clock=clock) as guard:
        await guard.add_budget(Budget(TEAM, Unit.USD, Decimal("1")))
        yield guard


def sv1_send(braket: BraketClient, n: int):  # type: ignore[no-untyped-def]
    return lambda: braket.create_quantum_task(SV1, ACTION, 100, "amazon-braket-test", f"s/{n}")


async def test_twenty_undeclared_sv1_tasks_cannot_spend_past_a_1_usd_budget(
    emulator: Emulator, braket: BraketClient, guard: BudgetGuard, clock: FakeClock
) -> None:
    # Each task runs 10 minutes on SV1: 0.75 USD. The old guard held the 3 s minimum
    # (0.00375 USD) for each, admitted all 20 and committed 15 USD against a 1 USD budget.
    for n in range(20):
        with contextlib.suppress(BudgetExceeded):
            await guard.submit(BraketTask(SV1, shots=100), sv1_send(braket, n), budgets=[TEAM])
    clock.advance(minutes=10)
    for arn in list(emulator.braket.tasks):
        emulator.braket.complete_task(arn)
    await guard.watch_once()
    team = await guard.ledger.state(TEAM, now=clock())
    assert team.committed <= team.limit, f"committed {team.committed} USD of {team.limit}"


async def test_an_undeclared_simulator_task_on_a_budget_is_refused_with_its_rule(
    emulator: Emulator, braket: BraketClient, guard: BudgetGuard
) -> None:
    with pytest.raises(BudgetExceeded) as info:
        await guard.submit(BraketTask(SV1, shots=100), sv1_send(braket, 0), budgets=[TEAM])
    [violation] = info.value.decision.violations
    assert violation.rule == RULE_MAX_DURATION_UNSET
    assert "max_duration" in violation.message
    assert emulator.calls("braket.CreateQuantumTask") == 0
    assert await guard.ledger.outstanding() == []
    # Drawing on no budget, nothing needs bounding: it is sent, unheld.
    sent = await guard.submit(BraketTask(SV1, shots=100), sv1_send(braket, 1))
    assert sent.external_id in emulator.braket.tasks and sent.id == ""


async def test_a_declared_max_duration_is_held_at_the_simulator_rate(
    emulator: Emulator, braket: BraketClient, guard: BudgetGuard
) -> None:
    task = BraketTask(SV1, shots=100, max_duration=timedelta(minutes=10))  # 0.75 USD
    admitted = 0
    for n in range(20):
        with contextlib.suppress(BudgetExceeded):
            sub = await guard.submit(task, sv1_send(braket, n), budgets=[TEAM])
            assert sub.reservation.amount_for(TEAM) == Decimal("0.75")
            admitted += 1
    assert admitted == 1  # a second 0.75 does not fit what is left of 1 USD
    assert emulator.calls("braket.CreateQuantumTask") == 1


async def test_the_watcher_cancels_a_simulator_task_running_past_its_max_duration(
    emulator: Emulator, braket: BraketClient, guard: BudgetGuard, clock: FakeClock
) -> None:
    emulator.braket.seed_run(timedelta(minutes=30))  # it would run 30 minutes: 2.25 USD
    task = BraketTask(SV1, shots=100, max_duration=timedelta(minutes=10))
    sub = await guard.submit(task, sv1_send(braket, 0), budgets=[TEAM])
    assert sub.external_id is not None
    clock.advance(minutes=9, seconds=59)
    assert await guard.watch_once() == 0  # still inside what it may run
    assert emulator.calls("braket.CancelQuantumTask") == 0
    clock.advance(seconds=1)
    assert await guard.watch_once() == 0  # cancelled now; it is billed once it has ended
    assert emulator.calls("braket.CancelQuantumTask") == 1
    ran = emulator.braket.tasks[sub.external_id]
    assert (ran.status, ran.cost) == ("CANCELLED", Decimal("0.75"))
    assert await guard.watch_once() == 1
    team = await guard.ledger.state(TEAM, now=clock())
    assert (team.committed, team.reserved) == (Decimal("0.75"), 0)  # what it really ran


async def test_a_simulator_task_that_ends_in_time_commits_its_run(
    emulator: Emulator, braket: BraketClient, guard: BudgetGuard, clock: FakeClock
) -> None:
    emulator.braket.seed_run(timedelta(minutes=4))
    task = BraketTask(SV1, shots=100, max_duration=timedelta(minutes=10))
    await guard.submit(task, sv1_send(braket, 0), budgets=[TEAM])
    clock.advance(minutes=6)  # the watcher was away: the task ended on its own at 4 minutes
    assert await guard.watch_once() == 1
    assert emulator.calls("braket.CancelQuantumTask") == 0
    team = await guard.ledger.state(TEAM, now=clock())
    assert team.committed == Decimal("0.30")  # 4 min x 0.075


async def test_a_failed_simulator_task_commits_nothing(
    emulator: Emulator, braket: BraketClient, guard: BudgetGuard, clock: FakeClock
) -> None:
    emulator.braket.seed_run(timedelta(minutes=2), fails="simulation ran out of memory")
    task = BraketTask(SV1, shots=100, max_duration=timedelta(minutes=10))
    sub = await guard.submit(task, sv1_send(braket, 0), budgets=[TEAM])
    clock.advance(minutes=3)
    assert await guard.watch_once() == 1
    assert sub.external_id is not None
    failed = emulator.braket.tasks[sub.external_id]
    assert (failed.status, failed.failure_reason, failed.cost) == (
        "FAILED",
        "simulation ran out of memory",
        0,
    )
    assert (await guard.ledger.state(TEAM, now=clock())).committed == 0


async def test_a_reservation_task_is_charged_to_no_budget(
    emulator: Emulator, braket: BraketClient, guard: BudgetGuard, clock: FakeClock
) -> None:
    # 1000 shots on Forte-1 cost 80.30 USD on demand: past the 10 USD limit and the 1 USD
    # team budget. Under a Braket Direct reservation it costs neither anything.
    emulator.braket.add_spending_limit(FORTE, "10")
    reservation = emulator.braket.add_reservation(FORTE)
    task = BraketTask(FORTE, shots=1000, reservation_arn=reservation)
    sub = await guard.submit(
        task,
        lambda: braket.create_quantum_task(
            FORTE,
            ACTION,
            1000,
            "amazon-braket-test",
            "r/0",
            associations=[{"arn": reservation, "type": "RESERVATION_TIME_WINDOW_ARN"}],
        ),
        budgets=[TEAM],
    )
    assert [c.amount for c in sub.reservation.charges] == [0]
    assert sub.external_id is not None
    limit = emulator.braket.limit_for(FORTE)
    assert limit is not None and limit.queued == 0  # Braket does not charge the limit either
    emulator.braket.complete_task(sub.external_id)
    assert await guard.watch_once() == 1
    assert (await guard.ledger.state(TEAM, now=clock())).committed == 0
    assert (await guard.ledger.state(KEY, now=clock())).used == 0
    # The same task on demand is refused, as before.
    with pytest.raises(BudgetExceeded):
        await guard.submit(BraketTask(FORTE, shots=1000), lambda: pytest.fail("sent"))


def test_a_reservation_arn_is_checked() -> None:
    with pytest.raises(InvalidInput) as info:
        BraketTask(FORTE, reservation_arn="arn:aws:braket:us-east-1:123456789012:quantum-task/x")
    assert info.value.field == "reservation_arn"
