"""The real Amazon Braket SDK, guarded, against the emulator."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal

import boto3
import pytest
from braket.aws import AwsDevice, AwsQuantumTask, AwsSession
from braket.circuits import Circuit

from quotaguard.braket.pricing import PriceTable
from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetExceeded, InvalidInput
from quotaguard.guard import BudgetGuard
from quotaguard.guard.stamps import BRAKET_TAG_KEY, client_token
from quotaguard.integrations import GuardBridge, IntegrationError, WrongThread, braket_sdk
from quotaguard.integrations.braket_sdk import guard_session, guarded_braket, task_from_request
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.testing import Emulator
from tests._support.aws import SECRET_KEY
from tests._support.braket import FORTE, GARNET, SV1
from tests._support.integrations import S3

pytestmark = pytest.mark.sdk


def bell() -> Circuit:
    return Circuit().h(0).cnot(0, 1)


def session(region: str = "us-east-1") -> AwsSession:
    return AwsSession(boto_session=boto3.Session(region_name=region))


async def device(arn: str = FORTE, aws: AwsSession | None = None) -> AwsDevice:
    return await asyncio.to_thread(AwsDevice, arn, aws or session())


@pytest.fixture(autouse=True)
def _unhook() -> object:
    yield None
    braket_sdk.uninstall()


async def test_over_budget_run_raises_and_sends_nothing(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    emulator.braket.add_spending_limit(FORTE, "10")
    forte = await device()
    # No shots given: the SDK applies 1000 on a QPU, 0.30 + 1000 x 0.08 = $80.30 > $10.
    with guarded_braket(GuardBridge.current(braket_guard)), pytest.raises(BudgetExceeded) as info:
        await asyncio.to_thread(forte.run, bell(), s3_destination_folder=S3)
    violation = info.value.decision.violations[0]
    assert violation.rule == "budget.remaining"
    assert violation.requested == Decimal("80.30")
    assert emulator.calls("braket.CreateQuantumTask") == 0
    assert await braket_guard.ledger.outstanding() == []


async def test_admitted_run_is_sent_and_bound(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    emulator.braket.add_spending_limit(FORTE, "100")
    forte = await device()
    with guarded_braket(GuardBridge.current(braket_guard)):
        task = await asyncio.to_thread(forte.run, bell(), shots=100, s3_destination_folder=S3)
    assert isinstance(task, AwsQuantumTask)
    assert emulator.calls("braket.CreateQuantumTask") == 1
    [held] = await braket_guard.ledger.outstanding()
    assert held.external_id == task.id
    assert held.charges[0].amount == Decimal("8.30")  # 0.30 + 100 x 0.08
    # The emulator charged the same task: guard and server agree on what was sent.
    assert emulator.braket.tasks[task.id].shots == 100


async def test_outside_the_block_nothing_is_guarded(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    emulator.braket.add_spending_limit(FORTE, "100")
    forte = await device()
    with guarded_braket(GuardBridge.current(braket_guard)):
        pass
    await asyncio.to_thread(forte.run, bell(), shots=10, s3_destination_folder=S3)
    assert emulator.calls("braket.CreateQuantumTask") == 1
    assert await braket_guard.ledger.outstanding() == []


async def test_run_batch_thread_pool_reserves_every_task_and_stops_at_the_limit(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    # $30 admits three tasks of $8.30 (24.90) and rejects the rest, whatever the pool's order.
    emulator.braket.add_spending_limit(FORTE, "30")
    forte = await device()
    with guarded_braket(GuardBridge.current(braket_guard)):
        batch = asyncio.ensure_future(
            asyncio.to_thread(
                forte.run_batch,
                [bell()] * 8,
                shots=100,
                s3_destination_folder=S3,
                max_parallel=8,
                poll_interval_seconds=0.01,
            )
        )
        # The SDK's pool waits until every task was created or has ended; once one create
        # fails (as it would on Braket's own rejection) the admitted ones must end: finish them.
        async with asyncio.timeout(30):
            while not batch.done():
                for arn, task in list(emulator.braket.tasks.items()):
                    if task.status == "QUEUED":
                        emulator.braket.complete_task(arn)
                await asyncio.sleep(0.01)
        with pytest.raises(BudgetExceeded):
            await batch
    assert emulator.calls("braket.CreateQuantumTask") == 3
    held = await braket_guard.ledger.outstanding()
    assert len(held) == 3 and all(r.external_id in emulator.braket.tasks for r in held)
    limit = emulator.braket.limit_for(FORTE)
    assert limit is not None and limit.total + limit.queued == Decimal("24.90") <= limit.amount


async def test_aws_quantum_task_create_and_user_budgets(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    emulator.braket.add_spending_limit(FORTE, "1000")
    await braket_guard.add_budget(Budget("team:a", Unit.USD, Decimal("10")))
    aws = session()
    await device(FORTE, aws)  # AwsQuantumTask.create validates against the device it knows
    with guarded_braket(GuardBridge.current(braket_guard), budgets=["team:a"]):
        await asyncio.to_thread(AwsQuantumTask.create, aws, FORTE, bell(), S3, 100)
        with pytest.raises(BudgetExceeded) as info:  # the team budget is what runs out
            await asyncio.to_thread(AwsQuantumTask.create, aws, FORTE, bell(), S3, 100)
    assert info.value.decision.violations[0].budget == "team:a"
    assert emulator.calls("braket.CreateQuantumTask") == 1


async def test_copied_session_for_another_region_is_guarded(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    emulator.braket.add_spending_limit(GARNET, "1")
    home = guard_session(session("us-east-1"), GuardBridge.current(braket_guard))
    # The device lives in eu-north-1: AwsDevice copies the session for that region.
    garnet = await device(GARNET, home)
    assert garnet._aws_session is not home
    assert garnet._aws_session.region == "eu-north-1"
    with pytest.raises(BudgetExceeded):
        await asyncio.to_thread(garnet.run, bell(), shots=1000, s3_destination_folder=S3)
    assert emulator.calls("braket.CreateQuantumTask") == 0
    # A session nothing guards is untouched by the hook.
    await asyncio.to_thread(
        (await device(GARNET, session("eu-north-1"))).run,
        bell(),
        shots=10,
        s3_destination_folder=S3,
    )
    assert emulator.calls("braket.CreateQuantumTask") == 1


async def test_calling_the_sdk_on_the_guard_loop_is_refused(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    emulator.braket.add_spending_limit(FORTE, "100")
    forte = await device()
    with guarded_braket(GuardBridge.current(braket_guard)), pytest.raises(WrongThread) as info:
        forte.run(bell(), shots=10, s3_destination_folder=S3)  # on the loop: would deadlock
    assert "asyncio.to_thread" in str(info.value)
    assert emulator.calls("braket.CreateQuantumTask") == 0


async def test_one_block_at_a_time(braket_guard: BudgetGuard) -> None:
    bridge = GuardBridge.current(braket_guard)
    with guarded_braket(bridge):
        blocked = guarded_braket(bridge)
        with pytest.raises(IntegrationError, match="already active"):
            blocked.__enter__()


def test_task_from_request_and_bad_input() -> None:
    task = task_from_request({"deviceArn": FORTE, "shots": 1000, "action": "{}"})
    assert (task.device_arn, task.effective_shots) == (FORTE, 1000)
    assert (task.reservation_arn, task.max_duration) == (None, None)
    reservation = "arn:aws:braket:us-east-1:123456789012:reservation/r-1"
    under = task_from_request(
        {
            "deviceArn": FORTE,
            "shots": 10,
            "associations": [{"arn": reservation, "type": "RESERVATION_TIME_WINDOW_ARN"}],
        },
        max_duration=timedelta(minutes=1),
    )
    assert (under.reservation_arn, under.max_duration) == (reservation, timedelta(minutes=1))
    with pytest.raises(InvalidInput) as info:
        task_from_request({"deviceArn": SV1, "shots": 0}, max_duration=60)  # type: ignore[arg-type]
    assert info.value.field == "max_duration"
    with pytest.raises(InvalidInput) as info:
        task_from_request({"deviceArn": FORTE, "shots": 0})
    assert info.value.field == "shots"
    with pytest.raises(InvalidInput) as info:
        task_from_request({"deviceArn": "not-an-arn", "shots": 1})
    assert info.value.field == "device_arn"
    with pytest.raises(InvalidInput) as info:
        braket_sdk.BraketGuardConfig(object())  # type: ignore[arg-type]
    assert info.value.field == "bridge"


async def test_program_set_is_priced_by_its_total_shots(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    # Program sets came in amazon-braket-sdk 1.97; older releases have none to price.
    program_sets = pytest.importorskip("braket.program_sets")
    ProgramSet = program_sets.ProgramSet

    emulator.braket.add_spending_limit(FORTE, "10")
    forte = await device()
    programs = ProgramSet([bell(), bell(), bell()], shots_per_executable=100)
    with guarded_braket(GuardBridge.current(braket_guard)), pytest.raises(BudgetExceeded) as info:
        await asyncio.to_thread(forte.run, programs, s3_destination_folder=S3)
    # 3 executables x 100 shots: 0.30 + 300 x 0.08 = $24.30 > $10, nothing sent.
    assert info.value.decision.violations[0].requested == Decimal("24.30")
    assert emulator.calls("braket.CreateQuantumTask") == 0


async def test_no_secret_reaches_logs_reprs_or_errors(
    emulator: Emulator, braket_guard: BudgetGuard, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.braket.add_spending_limit(FORTE, "10")
    forte = await device()
    bridge = GuardBridge.current(braket_guard)
    caplog.set_level(logging.DEBUG, logger="quotaguard")
    with guarded_braket(bridge) as config, pytest.raises(BudgetExceeded) as info:
        await asyncio.to_thread(forte.run, bell(), s3_destination_folder=S3)
    for text in (caplog.text, repr(bridge), repr(config), str(info.value), repr(info.value)):
        assert SECRET_KEY not in text


async def test_guarded_session_covers_run_batch_pool_copies(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    # run_batch calls AwsSession.copy_session(...) on the class: the copy inherits the guard.
    emulator.braket.add_spending_limit(FORTE, "100")
    aws = guard_session(session(), GuardBridge.current(braket_guard))
    forte = await device(FORTE, aws)
    batch = await asyncio.to_thread(
        forte.run_batch,
        [bell(), bell()],
        shots=100,
        s3_destination_folder=S3,
        poll_interval_seconds=0.01,
    )
    arns = {task.id for task in batch.tasks}
    held = await braket_guard.ledger.outstanding()
    assert {r.external_id for r in held} == arns and len(arns) == 2
    assert emulator.calls("braket.CreateQuantumTask") == 2


async def test_an_sdk_without_the_hooked_methods_is_refused(
    braket_guard: BudgetGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the hook were not installed yet, on a release whose AwsSession lacks copy_session.
    monkeypatch.setattr(braket_sdk, "_originals", {})
    monkeypatch.delattr(AwsSession, "copy_session")
    bridge = GuardBridge.current(braket_guard)
    with pytest.raises(IntegrationError, match="has no copy_session"):
        guard_session(AwsSession(boto3.Session(region_name="us-east-1")), bridge)
    assert braket_sdk._originals == {}


async def test_tasks_under_a_direct_reservation_are_charged_nothing(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    # Braket Direct bills the reservation, not its tasks: neither the device's spending limit
    # nor any budget is charged for them (the SDK's Tracker counts them 0).
    from braket.aws import DirectReservation

    emulator.braket.add_spending_limit(FORTE, "10")
    await braket_guard.add_budget(Budget("team:r", Unit.USD, Decimal("1")))
    reservation = emulator.braket.add_reservation(FORTE)
    forte = await device()
    bridge = GuardBridge.current(braket_guard)
    # The context adds the association inside AwsSession.create_quantum_task, from the
    # environment: the guard must price the request as that method sends it.
    with guarded_braket(bridge, budgets=["team:r"]), DirectReservation(forte, reservation):
        task = await asyncio.to_thread(forte.run, bell(), shots=100, s3_destination_folder=S3)
    [held] = await braket_guard.ledger.outstanding()
    assert held.external_id == task.id
    assert [c.amount for c in held.charges] == [0], held.charges
    # The one request sent carries the context's association and the hold's stamps.
    sent = emulator.braket.tasks[task.id]
    assert sent.associations == [{"arn": reservation, "type": "RESERVATION_TIME_WINDOW_ARN"}]
    assert sent.tags == {BRAKET_TAG_KEY: held.id}
    assert emulator.braket._tokens[("CreateQuantumTask", client_token(held.id))] == task.id
    # Passed to run() itself: 1000 shots (80.30 USD on demand) are charged nothing either.
    with guarded_braket(bridge, budgets=["team:r"]):
        await asyncio.to_thread(
            forte.run, bell(), shots=1000, s3_destination_folder=S3, reservation_arn=reservation
        )
    assert all(c.amount == 0 for r in await braket_guard.ledger.outstanding() for c in r.charges)
    limit = emulator.braket.limit_for(FORTE)
    assert limit is not None and limit.queued == 0


async def test_a_simulator_run_declares_its_max_duration_as_a_keyword(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    await braket_guard.add_budget(Budget("team:sim", Unit.USD, Decimal("1")))
    sv1 = await device(SV1)
    bridge = GuardBridge.current(braket_guard)
    with guarded_braket(bridge, budgets=["team:sim"]):
        with pytest.raises(BudgetExceeded) as info:  # undeclared: nothing bounds its cost
            await asyncio.to_thread(sv1.run, bell(), shots=100, s3_destination_folder=S3)
        assert info.value.decision.rules == ("braket.max_duration.unset",)
        assert emulator.calls("braket.CreateQuantumTask") == 0
        # The keyword is the guard's: the SDK never sees it (AwsQuantumTask would refuse it).
        task = await asyncio.to_thread(
            sv1.run, bell(), shots=100, s3_destination_folder=S3, max_duration=timedelta(minutes=4)
        )
        assert isinstance(task, AwsQuantumTask)
        batch = await asyncio.to_thread(
            sv1.run_batch,
            [bell()] * 2,
            shots=100,
            s3_destination_folder=S3,
            max_duration=timedelta(minutes=2),
        )
        assert len(batch.tasks) == 2
    held = {
        r.external_id: r.amount_for("team:sim") for r in await braket_guard.ledger.outstanding()
    }
    assert held[task.id] == Decimal("0.30")  # 4 min x 0.075
    assert sorted(held.values()) == [Decimal("0.15"), Decimal("0.15"), Decimal("0.30")]


async def test_uninstall_restores_the_sdk() -> None:
    from braket.aws.aws_quantum_task import AwsQuantumTask as Task

    original = Task.create
    with guarded_braket(
        GuardBridge.current(BudgetGuard(MemoryLedger(), prices=PriceTable.default()))
    ):
        assert Task.create is not original
    braket_sdk.uninstall()
    assert Task.create is original
    assert AwsSession.create_quantum_task.__name__ == "create_quantum_task"
    assert not hasattr(AwsSession.create_quantum_task, "__wrapped__")
