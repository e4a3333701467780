# ruff: noqa: E501  (the case table reads best one case a line)
"""Bad input across the public surface: a clear InvalidInput naming the field, nothing held,
nothing sent.

Every case runs against one world (a guard on a SQLite ledger with a user budget and one
outstanding hold, real IBM and Braket clients at the emulator). Before and after each case
the ledger snapshot and the emulator's request log must be identical.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quotaguard import Budget, Charge, FixedWindow, InvalidInput, RollingDays, SQLiteLedger, Unit
from quotaguard.braket.work import BraketTask
from quotaguard.guard import BudgetGuard
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.ibm.work import IBMJob, IBMSession
from tests._support.braket import FORTE
from tests._support.ledger import snapshot
from tests._support.reliability import BACKEND, CRN, World
from tests._support.secrets import IBM_API_KEY
from tests._support.times import T0

NAIVE = datetime(2026, 3, 15, 12, 0)
TASK_ARN = "arn:aws:braket:us-east-1:123456789012:quantum-task/abc"
Call = Callable[[World, BudgetGuard], Any]


def sync(fn: Callable[[], object]) -> Call:
    return lambda world, guard: fn()


def noop() -> None:
    return None


CASES: list[tuple[str, Call, str]] = [
    # budgets and charges (quotaguard.Budget / Charge)
    ("budget-key-space", sync(lambda: Budget("team a", Unit.USD, Decimal(1))), "key"),
    ("budget-key-unicode", sync(lambda: Budget("équipe", Unit.USD, Decimal(1))), "key"),
    ("budget-key-huge", sync(lambda: Budget("k" * 513, Unit.USD, Decimal(1))), "key"),
    ("budget-key-int", sync(lambda: Budget(7, Unit.USD, Decimal(1))), "key"),  # type: ignore[arg-type]
    ("budget-limit-negative", sync(lambda: Budget("t", Unit.USD, Decimal(-1))), "limit"),
    ("budget-limit-float", sync(lambda: Budget("t", Unit.USD, 0.1)), "limit"),  # type: ignore[arg-type]
    ("budget-limit-nan", sync(lambda: Budget("t", Unit.USD, Decimal("NaN"))), "limit"),
    ("budget-limit-huge", sync(lambda: Budget("t", Unit.USD, Decimal("1e40"))), "limit"),
    ("budget-unit-eur", sync(lambda: Budget("t", "EUR", Decimal(1))), "unit"),  # type: ignore[arg-type]
    ("budget-window-str", sync(lambda: Budget("t", Unit.USD, Decimal(1), "monthly")), "window"),  # type: ignore[arg-type]
    ("window-naive", sync(lambda: FixedWindow(NAIVE, NAIVE + timedelta(days=1))), "window.start"),
    ("window-days-zero", sync(lambda: RollingDays(0)), "window.days"),
    ("charge-amount-negative", sync(lambda: Charge("t", Decimal(-2), Unit.USD)), "charge.amount"),
    ("charge-amount-float", sync(lambda: Charge("t", 2.5, Unit.USD)), "charge.amount"),  # type: ignore[arg-type]
    ("charge-amount-text", sync(lambda: Charge("t", "two", Unit.USD)), "charge.amount"),  # type: ignore[arg-type]
    # the guard
    ("submit-not-callable", lambda w, g: g.submit(IBMJob(BACKEND, 60), "send"), "submit"),  # type: ignore[arg-type]
    ("submit-budgets-str", lambda w, g: g.submit(IBMJob(BACKEND, 60), noop, budgets="team:a"), "budgets"),  # type: ignore[arg-type]
    ("submit-unknown-budget", lambda w, g: g.submit(IBMJob(BACKEND, 60), noop, budgets=["nope"]), "budgets[0]"),
    ("submit-unknown-work", lambda w, g: g.submit(object(), noop), "work"),
    ("submit-idem-key-huge", lambda w, g: g.submit(IBMJob(BACKEND, 60), noop, idempotency_key="k" * 300), "idempotency_key"),
    ("check-unit-mismatch", lambda w, g: g.check(IBMJob(BACKEND, 60), budgets=["team:usd"]), "budgets[0]"),
    ("settle-not-a-target", lambda w, g: g.settle(42), "submission"),  # type: ignore[arg-type]
    ("settle-negative", lambda w, g: g.settle(w.held, actual=Decimal(-1)), "actual"),  # type: ignore[arg-type]
    ("add-budget-dict", lambda w, g: g.add_budget({"key": "x"}), "budget"),  # type: ignore[arg-type]
    # ledgers
    ("ledger-naive-now", lambda w, g: g.ledger.reserve([Charge("team:usd", 1, Unit.USD)], now=NAIVE), "now"),
    ("ledger-lease-negative", lambda w, g: g.ledger.reserve([Charge("team:usd", 1, Unit.USD)], now=T0, lease=timedelta(-1)), "lease"),
    ("ledger-lease-10y", lambda w, g: g.ledger.reserve([Charge("team:usd", 1, Unit.USD)], now=T0, lease=timedelta(days=3650)), "lease"),
    # IBM work types and client
    ("ibm-met-zero", sync(lambda: IBMJob(BACKEND, max_execution_time=0)), "max_execution_time"),
    ("ibm-met-int32", sync(lambda: IBMJob(BACKEND, max_execution_time=2**31)), "max_execution_time"),
    ("ibm-met-float", sync(lambda: IBMJob(BACKEND, max_execution_time=60.0)), "max_execution_time"),  # type: ignore[arg-type]
    ("ibm-met-bool", sync(lambda: IBMJob(BACKEND, max_execution_time=True)), "max_execution_time"),
    ("ibm-backend-blank", sync(lambda: IBMJob("  ")), "backend"),
    ("ibm-session-mode", sync(lambda: IBMSession(BACKEND, mode="turbo")), "mode"),  # type: ignore[arg-type]
    ("ibm-session-max-time", sync(lambda: IBMSession(BACKEND, max_time="forever")), "max_time"),
    ("ibm-crn-garbage", sync(lambda: IBMRuntimeClient(IBM_API_KEY, "instance-1", base_url="https://x.test")), "service_crn"),
    ("ibm-crn-huge", sync(lambda: IBMRuntimeClient(IBM_API_KEY, "crn:" + "x" * 600, base_url="https://x.test")), "service_crn"),
    ("ibm-base-url-http", sync(lambda: IBMRuntimeClient(IBM_API_KEY, CRN, base_url="http://example.com/api")), "base_url"),
    ("ibm-run-job-params", lambda w, g: w.ibm.run_job("sampler", BACKEND, "params"), "params"),  # type: ignore[arg-type]
    ("ibm-run-job-met", lambda w, g: w.ibm.run_job("sampler", BACKEND, {}, max_execution_time=-5), "max_execution_time"),
    ("ibm-session-ttl", lambda w, g: w.ibm.create_session(BACKEND, max_ttl=0), "max_ttl"),
    ("ibm-limit-negative", lambda w, g: w.ibm.update_instance_configuration(-5), "instance_limit"),
    # Braket work type and client
    ("braket-arn-garbage", sync(lambda: BraketTask("arn:aws:s3:::bucket")), "device_arn"),
    ("braket-arn-unicode", sync(lambda: BraketTask(FORTE + "é")), "device_arn"),
    ("braket-shots-negative", sync(lambda: BraketTask(FORTE, shots=-1)), "shots"),
    ("braket-shots-zero-qpu", sync(lambda: BraketTask(FORTE, shots=0)), "shots"),
    ("braket-shots-float", sync(lambda: BraketTask(FORTE, shots=1.5)), "shots"),  # type: ignore[arg-type]
    ("braket-shots-2-63", sync(lambda: BraketTask(FORTE, shots=2**63)), "shots"),
    ("braket-duration-negative", sync(lambda: BraketTask(FORTE, max_duration=timedelta(-1))), "max_duration"),
    ("braket-limit-cents", lambda w, g: w.braket.create_spending_limit(FORTE, "10.001"), "amount"),
    ("braket-limit-float", lambda w, g: w.braket.create_spending_limit(FORTE, 10.5), "amount"),  # type: ignore[arg-type]
    ("braket-limit-bad-arn", lambda w, g: w.braket.delete_spending_limit("arn:nope"), "arn"),
    ("braket-task-bad-arn", lambda w, g: w.braket.get_quantum_task(TASK_ARN + " x"), "arn"),
    ("braket-create-shots", lambda w, g: w.braket.create_quantum_task(FORTE, "{}", 0, "bucket", "p"), "shots"),
    ("braket-create-action", lambda w, g: w.braket.create_quantum_task(FORTE, "{not json", 1, "bucket", "p"), "action"),
    ("braket-search-str", lambda w, g: _drain(w.braket.search_spending_limits(FORTE)), "device_arns"),  # type: ignore[arg-type]
    ("braket-page-size", lambda w, g: _drain(w.braket.search_spending_limits(page_size=0)), "page_size"),
]  # fmt: skip


async def invoke(call: Call, world: World, guard: BudgetGuard) -> None:
    result = call(world, guard)
    if isinstance(result, Awaitable):
        await result


async def _drain(items: Any) -> list[object]:
    return [item async for item in items]


@pytest.fixture
async def guard(world: World, tmp_path: Path) -> Any:
    async with (
        SQLiteLedger(tmp_path / "bad.sqlite3", time_source="caller") as ledger,
        BudgetGuard(ledger, ibm=world.ibm, braket=world.braket, clock=lambda: T0) as guard,
    ):
        await guard.add_budget(Budget("team:usd", Unit.USD, Decimal(100)))
        # One real hold (and so a fetched IBM budget) that no bad call may disturb.
        world.held = await guard.submit(
            IBMJob(BACKEND, 60), lambda: world.ibm.run_job("sampler", BACKEND, {})
        )
        yield guard


def test_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "call", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_refused_cleanly(
    name: str, call: Call, field: str, world: World, guard: BudgetGuard
) -> None:
    before = await snapshot(guard.ledger, T0)
    requests = list(world.emu.requests)
    with pytest.raises(InvalidInput) as info:
        await invoke(call, world, guard)
    assert info.value.field == field, str(info.value)
    assert info.value.reason  # says what to fix
    assert str(info.value).startswith(f"{field}: ")
    assert await snapshot(guard.ledger, T0) == before  # nothing held or changed
    assert world.emu.requests == requests  # nothing sent
