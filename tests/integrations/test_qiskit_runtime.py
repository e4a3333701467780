"""qiskit-ibm-runtime 0.50 and 0.51, guarded, against the emulator (real SDK, real HTTP)."""

from __future__ import annotations

import asyncio
import logging
import warnings
from decimal import Decimal
from typing import Any

import pytest
import qiskit_ibm_runtime
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import Batch, QiskitRuntimeService, SamplerV2, Session

from quotaguard.errors import BudgetExceeded, InvalidInput
from quotaguard.guard import BudgetGuard
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.integrations import (
    ALLOW_UNTESTED,
    GuardBridge,
    IntegrationError,
    UntestedSDKWarning,
    WrongThread,
    _versions,
)
from quotaguard.integrations.qiskit_runtime import (
    check_version,
    guard_runtime,
    job_from_request,
    unguard_runtime,
)
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.testing import Emulator, FakeClock
from tests._support.integrations import BACKEND, CRN, KEY, OTHER, bell, make_service

pytestmark = [
    pytest.mark.sdk,
    # SamplerV2 is what 0.51 users run; its deprecation notice is not what is tested here.
    pytest.mark.filterwarnings("ignore:The SamplerV2 class is deprecated:DeprecationWarning"),
]


def sample(mode: Any, circuit: QuantumCircuit, max_execution_time: int | None) -> Any:
    sampler = SamplerV2(mode=mode)
    if max_execution_time is not None:
        sampler.options.max_execution_time = max_execution_time
    return sampler.run([circuit], shots=100)


async def test_over_budget_job_mode_raises_before_post_jobs(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    circuit = await asyncio.to_thread(bell, backend)
    # No max_execution_time: the 3 h cap (10,800 s) is reserved against 1,000 s left.
    with pytest.raises(BudgetExceeded) as info:
        await asyncio.to_thread(sample, backend, circuit, None)
    violation = info.value.decision.violations[0]
    assert violation.rule == "ibm.max_execution_time.unset"
    assert "max_execution_time" in violation.message
    assert emu.calls("ibm.create_job") == 0
    assert await guard.ledger.outstanding() == []


async def test_admitted_job_is_posted_and_bound(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    circuit = await asyncio.to_thread(bell, backend)
    job = await asyncio.to_thread(sample, backend, circuit, 60)
    assert emu.calls("ibm.create_job") == 1
    assert emu.ibm.jobs[job.job_id()].cost == 60
    [held] = await guard.ledger.outstanding()
    assert held.external_id == job.job_id()
    assert held.charges[0].amount == Decimal(60)
    # A second job does not fit what is left (1000 - 60 < 1000): rejected, nothing sent.
    with pytest.raises(BudgetExceeded):
        await asyncio.to_thread(sample, backend, circuit, 1000)
    assert emu.calls("ibm.create_job") == 1


async def test_batch_over_budget_job_raises_before_post_jobs(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    circuit = await asyncio.to_thread(bell, backend)

    def run_in_batch(max_execution_time: int) -> tuple[str | None, Any]:
        with Batch(backend=backend, max_time=300) as batch:
            return batch.session_id, sample(batch, circuit, max_execution_time)

    # The batch's 300 s fit; a 600 s job does not fit the batch: rejected before POST /jobs.
    with pytest.raises(BudgetExceeded) as info:
        await asyncio.to_thread(run_in_batch, 600)
    assert info.value.decision.violations[0].rule == "ibm.session.remaining"
    assert emu.calls("ibm.create_session") == 1
    assert emu.calls("ibm.create_job") == 0
    # A job that fits runs in the batch and is bound.
    session_id, job = await asyncio.to_thread(run_in_batch, 100)
    assert emu.calls("ibm.create_job") == 1
    assert emu.ibm.jobs[job.job_id()].session_id == session_id
    bound = {r.external_id for r in await guard.ledger.outstanding()}
    assert job.job_id() in bound and f"ibm-session:{session_id}" in bound


async def test_session_over_budget_is_not_opened_and_a_batch_holds_only_its_jobs(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    # A dedicated session bills wall-clock: its 2000 s max_time does not fit 1000 s.
    with pytest.raises(BudgetExceeded) as info:
        await asyncio.to_thread(Session, backend=backend, max_time=2000)
    assert info.value.decision.violations[0].budget == f"ibm:{CRN}"
    assert emu.calls("ibm.create_session") == 0
    # A batch bills its jobs' QPU time only; each job holds its own ceiling.
    batch = await asyncio.to_thread(Batch, backend=backend, max_time=2000)
    assert emu.calls("ibm.create_session") == 1
    held = {r.external_id: r for r in await guard.ledger.outstanding()}
    assert held[f"ibm-session:{batch.session_id}"].charges[0].amount == 0


async def test_session_mode_reserves_the_session_and_runs_jobs_in_it(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    circuit = await asyncio.to_thread(bell, backend)

    def run_in_session() -> Any:
        with Session(backend=backend, max_time=600) as session:
            return sample(session, circuit, 120)

    job = await asyncio.to_thread(run_in_session)
    assert emu.calls("ibm.create_session") == 1 and emu.calls("ibm.create_job") == 1
    held = {r.external_id: r for r in await guard.ledger.outstanding()}
    session_hold = held[f"ibm-session:{job.session_id}"]
    assert session_hold.charges[0].amount == Decimal(600)
    # The first job raises the session's hold to max_time + its ceiling (it may run past).
    assert held[job.job_id()].charges[0].amount == Decimal(120)


async def test_user_budgets_are_drawn_too(
    emu: Emulator, clock: FakeClock, backend: Any, service: QiskitRuntimeService
) -> None:
    ibm = IBMRuntimeClient(KEY, CRN, base_url=emu.url + "/api", iam_url=emu.url, clock=clock)
    async with ibm, BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock) as team_guard:
        from quotaguard.engine import Budget, Unit

        await team_guard.add_budget(Budget("team:q", Unit.SECONDS, Decimal(100)))
        guard_runtime(service, team_guard, budgets=["team:q"])  # rewrap with another guard
        circuit = await asyncio.to_thread(bell, backend)
        await asyncio.to_thread(sample, backend, circuit, 80)
        with pytest.raises(BudgetExceeded) as info:
            await asyncio.to_thread(sample, backend, circuit, 80)
        assert info.value.decision.violations[0].budget == "team:q"
    assert emu.calls("ibm.create_job") == 1


async def test_clients_for_other_instances_refuse_rather_than_send_unguarded(
    emu: Emulator, service: QiskitRuntimeService
) -> None:
    # The service makes a client per instance it touches; the guard watches CRN only.
    client = await asyncio.to_thread(service._create_new_cloud_api_client, OTHER)
    with pytest.raises(IntegrationError, match="unguarded"):
        await asyncio.to_thread(
            client.program_run, "sampler", BACKEND, {"pubs": []}, None, None, None
        )
    with pytest.raises(IntegrationError, match="unguarded"):
        await asyncio.to_thread(client.create_session, BACKEND, OTHER, 60, "batch")
    assert emu.calls("ibm.create_job") == emu.calls("ibm.create_session") == 0


async def test_sdk_call_on_the_guard_loop_is_refused(
    emu: Emulator, service: QiskitRuntimeService
) -> None:
    # The hooked client method itself, on the loop thread: waiting there would deadlock.
    # (sampler.run on this loop would first block on the SDK's own GETs to this emulator.)
    client = service._active_api_client
    with pytest.raises(WrongThread, match="to_thread"):
        client.program_run("sampler", BACKEND, {"pubs": []}, None, None, None)
    with pytest.raises(WrongThread):
        client.create_session(BACKEND, CRN, 60, "batch")
    assert emu.calls("ibm.create_job") == emu.calls("ibm.create_session") == 0


async def test_unguard_restores_the_sdk(
    emu: Emulator, guard: BudgetGuard, service: QiskitRuntimeService, backend: Any
) -> None:
    unguard_runtime(service)
    circuit = await asyncio.to_thread(bell, backend)
    await asyncio.to_thread(sample, backend, circuit, None)  # not guarded: sent as is
    assert emu.calls("ibm.create_job") == 1
    assert await guard.ledger.outstanding() == []


@pytest.fixture
def versions(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No opt-in in the environment, and no version warned about yet in this process."""
    monkeypatch.delenv(ALLOW_UNTESTED, raising=False)
    monkeypatch.setattr(_versions, "_warned", set())
    return monkeypatch


async def test_untested_version_fails_loudly_at_wrap_time(
    emu: Emulator, guard: BudgetGuard, versions: pytest.MonkeyPatch
) -> None:
    svc = await asyncio.to_thread(make_service, emu)
    versions.setattr(qiskit_ibm_runtime, "__version__", "0.52.0")
    with pytest.raises(IntegrationError, match=rf">=0.50,<0.52.*{ALLOW_UNTESTED}=1"):
        guard_runtime(svc, guard)
    assert "program_run" not in vars(svc._active_api_client)  # nothing half-wrapped
    for good in ("0.50.0", "0.50.9", "0.51.3", "0.51.0rc1"):
        check_version(good)
    for bad in ("0.52.0", "1.0.0", "dev"):
        with pytest.raises(IntegrationError, match=ALLOW_UNTESTED):
            check_version(bad)
    for old in ("0.49.2", "0.1.0"):
        with pytest.raises(IntegrationError, match="older"):
            check_version(old)


async def test_opt_in_guards_an_untested_version_and_warns_once(
    emu: Emulator, guard: BudgetGuard, versions: pytest.MonkeyPatch
) -> None:
    svc = await asyncio.to_thread(make_service, emu)
    versions.setattr(qiskit_ibm_runtime, "__version__", "0.53.1")
    versions.setenv(ALLOW_UNTESTED, "1")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        guard_runtime(svc, guard)
        unguard_runtime(svc)
        guard_runtime(svc, guard)  # the same version again: no second warning
    assert [type(w.message) for w in seen] == [UntestedSDKWarning]
    assert "qiskit-ibm-runtime 0.53.1" in str(seen[0].message)
    # Guarded for real: over budget is refused before POST /jobs.
    backend = await asyncio.to_thread(svc.backend, BACKEND)
    circuit = await asyncio.to_thread(bell, backend)
    with pytest.raises(BudgetExceeded):
        await asyncio.to_thread(sample, backend, circuit, None)
    assert emu.calls("ibm.create_job") == 0
    # An older release is refused even when opted in: its submission path differs.
    versions.setattr(qiskit_ibm_runtime, "__version__", "0.49.0")
    with pytest.raises(IntegrationError, match="older"):
        guard_runtime(svc, guard)
    # Other values are not the opt-in.
    versions.setenv(ALLOW_UNTESTED, "yes")
    versions.setattr(qiskit_ibm_runtime, "__version__", "0.53.1")
    with pytest.raises(IntegrationError, match=ALLOW_UNTESTED):
        check_version("0.53.1")


async def test_missing_hooks_refuse_even_when_opted_in(
    emu: Emulator, guard: BudgetGuard, versions: pytest.MonkeyPatch
) -> None:
    svc = await asyncio.to_thread(make_service, emu)
    versions.setenv(ALLOW_UNTESTED, "1")
    versions.setattr(qiskit_ibm_runtime, "__version__", "0.60.0")

    def program_run(program_id: str, backend: str, inputs: dict[str, Any]) -> None:
        raise AssertionError("never called")

    # A release whose client renamed the parameters the hook reads.
    versions.setattr(svc._active_api_client, "program_run", program_run)
    with pytest.raises(IntegrationError, match=r"program_run\(backend_name=\)"):
        guard_runtime(svc, guard)
    versions.delattr(svc._active_api_client, "program_run")
    versions.delattr(type(svc._active_api_client), "create_session")
    with pytest.raises(IntegrationError, match="has no create_session"):
        guard_runtime(svc, guard)


async def test_bad_input_at_wrap_time(emu: Emulator, guard: BudgetGuard) -> None:
    svc = await asyncio.to_thread(make_service, emu)
    with pytest.raises(InvalidInput) as info:
        guard_runtime(object(), guard)
    assert info.value.field == "service"
    with pytest.raises(InvalidInput) as info:
        guard_runtime(svc, guard, budgets="team:a")
    assert info.value.field == "budgets"
    async with BudgetGuard(MemoryLedger()) as no_ibm:
        with pytest.raises(InvalidInput) as info:
            guard_runtime(svc, no_ibm)
    assert info.value.field == "guard"
    bridge = GuardBridge.current(guard)
    assert guard_runtime(svc, bridge) is svc


def test_job_from_request_measures_the_serialized_inputs() -> None:
    job = job_from_request("ibm_x", {"pubs": [], "options": {"a": "b" * 100}}, session_id="")
    assert job.input_bytes > 100 and job.session_id is None and job.max_execution_time is None
    assert job_from_request("ibm_x", {}, max_execution_time=0).max_execution_time is None
    with pytest.raises(InvalidInput):
        job_from_request(None, {})


async def test_no_secret_reaches_logs_reprs_or_errors(
    emu: Emulator, guard: BudgetGuard, backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    circuit = await asyncio.to_thread(bell, backend)
    caplog.set_level(logging.DEBUG, logger="quotaguard")
    with pytest.raises(BudgetExceeded) as rejected:
        await asyncio.to_thread(sample, backend, circuit, None)
    svc = guard_runtime(await asyncio.to_thread(make_service, emu), guard)
    other = await asyncio.to_thread(svc._create_new_cloud_api_client, OTHER)
    with pytest.raises(IntegrationError) as refused:
        await asyncio.to_thread(other.create_session, BACKEND, OTHER, 60, "batch")
    tokens = list(emu.ibm.tokens)
    assert tokens
    texts = [caplog.text, repr(GuardBridge.current(guard)), str(rejected.value), str(refused.value)]
    for text in texts:
        assert KEY not in text and not any(token in text for token in tokens)
