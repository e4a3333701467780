"""Integration fixtures against the emulator: a guarded Braket client with every braket client
pointed at the emulator, and an IBM instance, its guard and a guarded ``QiskitRuntimeService``."""

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
from quotaguard.testing import Emulator, FakeClock
from tests._support.aws import botocore_session
from tests._support.integrations import BACKEND, CRN, KEY, OTHER, make_service

if TYPE_CHECKING:
    from qiskit_ibm_runtime import QiskitRuntimeService


@pytest.fixture
def braket_at_emulator(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    """Every braket client the Braket SDK makes reaches the emulator, in us-east-1, signing
    with the test key of the environment (``aws_isolated``), which the emulator verifies."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", emulator.url)


@pytest.fixture
async def braket_guard(
    emulator: Emulator, clock: FakeClock, braket_at_emulator: None
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


@pytest.fixture
async def service(emu: Emulator, guard: BudgetGuard) -> QiskitRuntimeService:
    svc = await asyncio.to_thread(make_service, emu)
    return guard_runtime(svc, guard)


@pytest.fixture
async def backend(service: QiskitRuntimeService) -> Any:
    return await asyncio.to_thread(service.backend, BACKEND)
