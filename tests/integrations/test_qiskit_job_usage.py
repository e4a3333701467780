"""qiskit-ibm-runtime reads the emulator's job usage as it reads IBM's, and the guard agrees.

``RuntimeJobV2.usage()`` (0.51) returns 0 while ``usage.status`` is "pending" and the figure once
final; the guarded job's hold stays until then and is committed at that figure.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from qiskit_ibm_runtime import SamplerV2

from quotaguard import ReservationState
from quotaguard.guard import BudgetGuard
from quotaguard.testing import Emulator
from tests._support.integrations import bell

pytestmark = [
    pytest.mark.sdk,
    pytest.mark.filterwarnings("ignore:The SamplerV2 class is deprecated:DeprecationWarning"),
]


def run(backend: Any) -> Any:
    sampler = SamplerV2(mode=backend)
    sampler.options.max_execution_time = 300
    return sampler.run([bell(backend)], shots=100)


async def test_the_sdk_and_the_guard_wait_for_final_usage(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    job = await asyncio.to_thread(run, backend)
    emu.ibm.complete_job(job.job_id(), 0, pending=True)
    assert await asyncio.to_thread(job.usage) == 0  # the SDK: not final yet
    metrics = await asyncio.to_thread(job.metrics)
    assert metrics["usage"]["status"] == "pending"
    assert metrics["timestamps"]["running"] is not None
    assert await guard.watch_once() == 0
    [held] = await guard.ledger.outstanding()
    assert held.external_id == job.job_id()
    emu.ibm.finalize_usage(job.job_id(), 120)
    assert await asyncio.to_thread(job.usage) == 120
    assert await guard.watch_once() == 1
    settled = await guard.ledger.get(held.id)
    assert settled.state is ReservationState.COMMITTED
    assert settled.actual is not None and settled.actual[0].amount == 120
