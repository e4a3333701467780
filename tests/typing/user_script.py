# pyright: strict
"""A user's script, as one would write it against the public API: checked by ``mypy --strict``
and pyright in ``nox -s typecheck`` (not collected by pytest; nothing here runs in the suite).

Each ``assert_type`` is a promise of the public surface: a change that weakens a type fails the
type check here before a user's own strict build does. The two SDKs ship no type information
(hence their ``reportMissingTypeStubs`` ignores); what quotaguard hands back keeps their types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import assert_type

from braket.aws import AwsSession  # pyright: ignore[reportMissingTypeStubs]
from qiskit_ibm_runtime import QiskitRuntimeService  # pyright: ignore[reportMissingTypeStubs]

from quotaguard import (
    Budget,
    BudgetExceeded,
    BudgetGuard,
    Charge,
    Decision,
    Reservation,
    Submission,
    Unit,
    Violation,
)
from quotaguard.braket import BraketClient, BraketTask
from quotaguard.engine import Estimate
from quotaguard.guard import Adapter, Work
from quotaguard.ibm import IBMJob, IBMRuntimeClient
from quotaguard.integrations import GuardBridge, IntegrationError
from quotaguard.integrations.braket_sdk import guard_session
from quotaguard.integrations.qiskit_runtime import guard_runtime
from quotaguard.ledger import MemoryLedger

FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"


def explain(error: BudgetExceeded) -> list[str]:
    """What a user prints on a rejection: the rule, the budget and the amounts."""
    lines: list[str] = []
    for violation in error.violations:
        assert_type(violation, Violation)
        left = "?" if violation.remaining is None else f"{violation.remaining:f}"
        lines.append(f"{violation.rule} on {violation.budget}: {left} left; {violation.message}")
    return lines


async def submit_to_braket(guard: BudgetGuard, braket: BraketClient, program: str) -> str | None:
    task = BraketTask(FORTE, shots=1000)
    try:
        submission = await guard.submit(
            task,
            partial(braket.create_quantum_task, FORTE, program, 1000, "bucket", "prefix"),
            budgets=["team:research"],
        )
    except BudgetExceeded as error:
        print("\n".join(explain(error)))
        return None
    # The submission carries the send's own result type (None only for a replayed key).
    assert_type(submission, Submission[str])
    assert_type(submission.result, str | None)
    assert_type(submission.reservation, Reservation)
    assert_type(submission.decision, Decision)
    return submission.id


@dataclass(frozen=True)
class Experiment:
    """A user's own work type, priced by their own adapter."""

    lab: str
    dollars: Decimal


class LabAdapter:
    """A custom ``adapters=`` entry: it satisfies the ``Adapter`` protocol structurally."""

    provider = "lab"
    unit = Unit.USD

    def handles(self, work: object) -> bool:
        return isinstance(work, Experiment)

    async def estimate(self, work: Experiment, *, now: datetime, fail_open: bool) -> Estimate:
        charge = Charge(f"lab:{work.lab}", work.dollars, Unit.USD)
        return Estimate(charges=(charge,), amount=work.dollars, unit=Unit.USD)

    def explain(self, work: Experiment, violations: Sequence[Violation]) -> tuple[Violation, ...]:
        return tuple(violations)

    def external_id(self, work: Experiment, result: object) -> str | None:
        return result if isinstance(result, str) else None

    def owns(self, external_id: str) -> bool:
        return external_id.startswith("lab-")

    async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None:
        return reserved

    async def sync(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def run_in_the_lab(count: int) -> int:
    return count


def book_the_lab() -> list[str]:
    return ["lab-1"]


async def custom_work() -> None:
    adapter: Adapter = LabAdapter()
    async with BudgetGuard(MemoryLedger(), adapters=[adapter]) as guard:
        work: Work = Experiment("optics", Decimal("3"))
        assert_type((await guard.check(work)).admitted, bool)
        ran = await guard.submit(work, partial(run_in_the_lab, 3))  # an async send
        assert_type(ran, Submission[int])
        booked = await guard.submit(work, book_the_lab)  # a sync send
        assert_type(booked.result, list[str] | None)
        await guard.submit([work], book_the_lab)  # type: ignore[call-overload]  # a list is no Work
        # The audit read: an async iterator of every reservation kept, filtered.
        async for kept in guard.ledger.reservations(budgets=["team:research"], page_size=100):
            assert_type(kept, Reservation)


async def main() -> None:
    async with (
        IBMRuntimeClient() as ibm,
        BraketClient("us-east-1") as braket,
        BudgetGuard(ibm=ibm, braket=braket) as guard,
    ):
        await guard.add_budget(Budget("team:research", Unit.USD, Decimal("250")))
        decision = await guard.check(IBMJob("ibm_brisbane", max_execution_time=300))
        assert_type(decision, Decision)
        if not decision.admitted:
            assert_type(decision.violations[0], Violation)
        await submit_to_braket(guard, braket, "OPENQASM 3; qubit q; h q;")
        await custom_work()

        # The SDK integrations hand back what they were given, typed as it was.
        bridge = GuardBridge.current(guard)
        service = guard_runtime(QiskitRuntimeService(channel="ibm_quantum_platform"), bridge)
        assert_type(service, QiskitRuntimeService)
        session = guard_session(AwsSession(), bridge, budgets=["team:research"])
        assert_type(session, AwsSession)
        try:
            await asyncio.to_thread(service.backends)
        except IntegrationError as error:
            print(error)


if __name__ == "__main__":
    asyncio.run(main())
