"""The Executor-based submission paths of qiskit-ibm-runtime 0.51, guarded, against the emulator.

``Executor.run`` (program id ``"executor"``) and the client-side primitives built on it
(``qiskit_ibm_runtime.executor_sampler.SamplerV2``, ``executor_estimator.EstimatorV2``) reach
``POST /jobs`` through ``service._run`` or ``mode._run`` like the server-side primitives do; these
tests prove the guard decides before anything is sent on each of them.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import Batch, Executor, QuantumProgram, Session
from qiskit_ibm_runtime.executor_estimator import EstimatorV2
from qiskit_ibm_runtime.executor_sampler import SamplerV2

from quotaguard.errors import BudgetExceeded
from quotaguard.guard import BudgetGuard
from quotaguard.testing import Emulator
from tests._support.integrations import CRN, bell

pytestmark = pytest.mark.sdk

KINDS = ("executor", "sampler", "estimator")


def submit(kind: str, mode: Any, circuit: QuantumCircuit, max_execution_time: int | None) -> Any:
    """Submit ``circuit`` in ``mode`` the way a user of ``kind`` would (a job, or an exception)."""
    primitive: Any
    if kind == "executor":
        program = QuantumProgram(shots=100)
        program.append_circuit_item(circuit)
        primitive = Executor(mode)
        primitive.options.max_execution_time = max_execution_time
        return primitive.run(program)
    if kind == "sampler":
        primitive = SamplerV2(mode=mode)
        primitive.options.max_execution_time = max_execution_time
        return primitive.run([circuit], shots=100)
    unmeasured = circuit.remove_final_measurements(inplace=False)
    observable = SparsePauliOp("ZZ").apply_layout(unmeasured.layout)
    primitive = EstimatorV2(mode=mode)
    primitive.options.max_execution_time = max_execution_time
    return primitive.run([(unmeasured, observable)])


@pytest.mark.parametrize("kind", KINDS)
async def test_over_budget_run_raises_before_post_jobs(
    emu: Emulator, guard: BudgetGuard, backend: Any, kind: str
) -> None:
    circuit = await asyncio.to_thread(bell, backend)
    # No max_execution_time: the 3 h cap (10,800 s) is reserved against 1,000 s left.
    with pytest.raises(BudgetExceeded) as unset:
        await asyncio.to_thread(submit, kind, backend, circuit, None)
    assert unset.value.decision.violations[0].rule == "ibm.max_execution_time.unset"
    # An explicit limit above what the instance has left is rejected the same way.
    with pytest.raises(BudgetExceeded) as too_long:
        await asyncio.to_thread(submit, kind, backend, circuit, 2000)
    assert too_long.value.decision.violations[0].budget == f"ibm:{CRN}"
    assert emu.calls("ibm.create_job") == 0
    assert emu.ibm.jobs == {}
    assert await guard.ledger.outstanding() == []


@pytest.mark.parametrize("kind", KINDS)
async def test_admitted_run_is_posted_once_and_bound(
    emu: Emulator, guard: BudgetGuard, backend: Any, kind: str
) -> None:
    circuit = await asyncio.to_thread(bell, backend)
    job = await asyncio.to_thread(submit, kind, backend, circuit, 60)
    assert emu.calls("ibm.create_job") == 1
    posted = emu.ibm.jobs[job.job_id()]
    assert posted.program_id == "executor" and posted.cost == 60
    [held] = await guard.ledger.outstanding()
    assert held.external_id == job.job_id()
    assert held.charges[0].amount == Decimal(60)
    # What is left (940 s) does not hold another 1,000 s run: rejected, nothing more sent.
    with pytest.raises(BudgetExceeded):
        await asyncio.to_thread(submit, kind, backend, circuit, 1000)
    assert emu.calls("ibm.create_job") == 1


async def test_deprecated_environment_max_execution_time_is_what_is_reserved(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    # Executor falls back to options.environment.max_execution_time (deprecated in 0.50): the
    # guard must reserve the value the SDK sends as the job's cost, wherever the user set it.
    circuit = await asyncio.to_thread(bell, backend)

    def run() -> Any:
        program = QuantumProgram(shots=100)
        program.append_circuit_item(circuit)
        executor = Executor(backend)
        with pytest.warns(DeprecationWarning, match="max_execution_time"):
            executor.options.environment.max_execution_time = 45
        return executor.run(program)

    job = await asyncio.to_thread(run)
    assert emu.ibm.jobs[job.job_id()].cost == 45
    [held] = await guard.ledger.outstanding()
    assert held.external_id == job.job_id() and held.charges[0].amount == Decimal(45)


@pytest.mark.parametrize(
    ("kind", "mode_class"),
    [("executor", Batch), ("executor", Session), ("sampler", Batch), ("estimator", Batch)],
)
async def test_run_in_a_batch_or_session_is_guarded_against_its_max_time(
    emu: Emulator, guard: BudgetGuard, backend: Any, kind: str, mode_class: Any
) -> None:
    circuit = await asyncio.to_thread(bell, backend)

    def run_in(max_execution_time: int) -> tuple[str | None, Any]:
        with mode_class(backend=backend, max_time=300) as mode:
            return mode.session_id, submit(kind, mode, circuit, max_execution_time)

    # The 300 s batch/session fits the instance; a 600 s run does not fit it: not sent.
    with pytest.raises(BudgetExceeded) as info:
        await asyncio.to_thread(run_in, 600)
    assert info.value.decision.violations[0].rule == "ibm.session.remaining"
    assert emu.calls("ibm.create_session") == 1
    assert emu.calls("ibm.create_job") == 0
    # A run that fits is sent into the batch/session and bound. A session holds max_time
    # raised by the job's ceiling (it may run past max_time); a batch nothing, the job its
    # ceiling (a batch bills its jobs' QPU time).
    session_id, job = await asyncio.to_thread(run_in, 100)
    assert emu.calls("ibm.create_job") == 1
    posted = emu.ibm.jobs[job.job_id()]
    assert posted.session_id == session_id and posted.program_id == "executor"
    held = {r.external_id: r for r in await guard.ledger.outstanding()}
    session_hold = Decimal(0 if mode_class is Batch else 300)
    assert held[f"ibm-session:{session_id}"].charges[0].amount == session_hold
    assert held[job.job_id()].charges[0].amount == Decimal(100)
