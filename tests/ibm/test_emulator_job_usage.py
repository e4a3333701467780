"""The emulator's job status and metrics, raw: each ending IBM gives a job, as the live API and
qiskit-ibm-runtime 0.51 shape it (``usage.status``, ``state.reason_code``, ``timestamps``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from quotaguard._http import HTTPClient
from quotaguard.testing import Emulator, FakeClock
from tests._support.ibm import CRN
from tests._support.ibm_wire import call, token

OLDER = "2025-01-01"


@pytest.fixture
async def http() -> AsyncIterator[HTTPClient]:
    async with HTTPClient(provider="test") as client:
        yield client


async def read(
    http: HTTPClient, emu: Emulator, job: str, version: str = "2026-04-15"
) -> tuple[dict[str, Any], dict[str, Any]]:
    bearer = await token(http, emu)
    _, reply = await call(http, emu, "GET", f"/jobs/{job}", bearer=bearer, version=version)
    _, metrics = await call(
        http, emu, "GET", f"/jobs/{job}/metrics", bearer=bearer, version=version
    )
    return reply, metrics


def consumed(emu: Emulator) -> Decimal:
    return emu.ibm.instances[CRN].consumed_seconds


async def test_pending_usage_then_final(http: HTTPClient, emu: Emulator, clock: FakeClock) -> None:
    emu.ibm.add_job("j1", CRN)
    clock.advance(minutes=5)
    emu.ibm.complete_job("j1", 3, pending=True)
    reply, metrics = await read(http, emu, "j1")
    assert reply["state"]["status"] == "Completed"
    assert metrics["usage"] == {"qpu_charge_time_seconds": 3, "status": "pending"}
    assert metrics["timestamps"]["running"] is not None  # a completed job ran
    assert metrics["timestamps"]["finished"] == clock().isoformat().replace("+00:00", "Z")
    assert consumed(emu) == Decimal("120.5")  # not counted until final
    _, older = await read(http, emu, "j1", OLDER)
    assert older["usage"] == {}  # the older API shows no figure until final
    emu.ibm.finalize_usage("j1", 40)
    _, metrics = await read(http, emu, "j1")
    assert metrics["usage"] == {"qpu_charge_time_seconds": 40, "status": "complete"}
    assert consumed(emu) == Decimal("160.5")


async def test_older_api_reports_both_figures(http: HTTPClient, emu: Emulator) -> None:
    emu.ibm.add_job("j2", CRN)
    emu.ibm.complete_job("j2", 7, seconds=9)
    _, metrics = await read(http, emu, "j2", OLDER)
    assert metrics["usage"] == {"quantum_seconds": 7, "seconds": 9}
    _, current = await read(http, emu, "j2")
    assert current["usage"] == {"qpu_charge_time_seconds": 9, "status": "complete"}
    assert consumed(emu) == Decimal("129.5")  # system execution time bills (the FAQ)


async def test_cancelled_while_queued_and_after_running(http: HTTPClient, emu: Emulator) -> None:
    emu.ibm.add_job("queued", CRN)
    emu.ibm.cancel_job("queued")
    reply, metrics = await read(http, emu, "queued")
    assert reply["state"] == {"status": "Cancelled", "reason": None, "reason_code": None}
    assert metrics["timestamps"]["running"] is None
    assert metrics["usage"] == {}
    emu.ibm.add_job("ran", CRN)
    emu.ibm.set_job_status("ran", "Running")
    emu.ibm.cancel_job("ran", 12)
    _, metrics = await read(http, emu, "ran")
    assert metrics["timestamps"]["running"] is not None
    assert metrics["usage"] == {"qpu_charge_time_seconds": 12, "status": "complete"}


async def test_ran_too_long_and_failed_after_running(http: HTTPClient, emu: Emulator) -> None:
    emu.ibm.add_job("long", CRN)
    emu.ibm.cancel_job("long", ran_too_long=True, pending=True)
    reply, metrics = await read(http, emu, "long")
    assert reply["state"] == {"status": "Cancelled", "reason": "Ran too long", "reason_code": 1305}
    assert metrics["timestamps"]["running"] is not None  # it ran
    assert metrics["usage"]["status"] == "pending"
    emu.ibm.add_job("failed", CRN)
    emu.ibm.set_job_status("failed", "Running")
    emu.ibm.fail_job("failed", reason="Error in the program")
    reply, metrics = await read(http, emu, "failed")
    assert (reply["status"], reply["state"]["reason"]) == ("Failed", "Error in the program")
    assert metrics["timestamps"]["running"] is not None
    assert metrics["usage"] == {}
