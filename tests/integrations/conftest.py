"""Integration fixtures against the emulator: AWS settings isolated from the developer's machine
and a guarded Braket client; an IBM instance, its guard and a guarded ``QiskitRuntimeService``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from quotaguard.braket import BraketClient
from quotaguard.guard import BudgetGuard
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.integrations.qiskit_runtime import guard_runtime
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.testing import Emulator
from tests.braket.conftest import ACCESS_KEY, SECRET_KEY, botocore_session
from tests.conftest import FakeClock

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit_ibm_runtime import QiskitRuntimeService

FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
GARNET = "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet"
SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
S3 = ("amzn-braket-test-bucket", "tasks")

KEY = "qg-sdk-test-apikey-5b7e"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-sdk:inst-1::"
OTHER = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-sdk:inst-2::"
BACKEND = "ibm_emulated"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, emulator: Emulator) -> None:
    """Stock AWS settings for the Braket SDK, every braket client pointed at the emulator."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", emulator.url)
    emulator.braket.add_credentials(ACCESS_KEY, SECRET_KEY)


@pytest.fixture
async def braket_guard(
    emulator: Emulator, clock: FakeClock, aws_env: None
) -> AsyncIterator[BudgetGuard]:
    client = BraketClient(
        "us-east-1",
        endpoint_url=emulator.url,
        botocore_session=botocore_session(),
    )
    async with client, BudgetGuard(MemoryLedger(), braket=client, clock=clock) as guard:
        yield guard


@pytest.fixture
async def emu(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator with an API key and two 1,000 s IBM instances, the SDK pointed at it."""
    emulator.ibm.add_api_key(KEY, "acct-sdk")
    emulator.ibm.add_instance(CRN, plan_id="premium", limit_seconds=1000)
    emulator.ibm.add_instance(OTHER, plan_id="premium", limit_seconds=1000)
    # qiskit-ibm-runtime reads IAM_URL; the Functions switch skips IBM Cloud Global Search.
    monkeypatch.setenv("IAM_URL", emulator.url)
    monkeypatch.setenv("QISKIT_FUNCTIONS_EXPERIMENTAL", "1")
    return emulator


@pytest.fixture
async def guard(emu: Emulator, clock: FakeClock) -> AsyncIterator[BudgetGuard]:
    ibm = IBMRuntimeClient(KEY, CRN, base_url=emu.url + "/api", iam_url=emu.url, clock=clock)
    async with ibm, BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock) as g:
        yield g


def make_service(emu: Emulator) -> QiskitRuntimeService:
    # Imported here: the Braket tests in this directory need not pay for importing qiskit.
    from qiskit_ibm_runtime import QiskitRuntimeService

    # A URL containing "experimental" is used as is (any other is rewritten and loses its port).
    return QiskitRuntimeService(
        channel="ibm_quantum_platform",
        token=KEY,
        instance=CRN,
        url=f"{emu.url}/experimental/api/v1",
    )


def bell(backend: Any) -> QuantumCircuit:
    """A Bell circuit transpiled for ``backend`` (ISA, as the primitives require)."""
    from qiskit import QuantumCircuit, transpile

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return transpile(qc, backend, optimization_level=1)


@pytest.fixture
async def service(emu: Emulator, guard: BudgetGuard) -> QiskitRuntimeService:
    svc = await asyncio.to_thread(make_service, emu)
    return guard_runtime(svc, guard)


@pytest.fixture
async def backend(service: QiskitRuntimeService) -> Any:
    return await asyncio.to_thread(service.backend, BACKEND)
