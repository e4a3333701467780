"""What IBM will bill for an ended job (``quotaguard.ibm.billing``), and how the job status reply
and metrics are read: every case of DESIGN.md's settlement table, from wire JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from quotaguard._wire import Response
from quotaguard.ibm.billing import JobBill, job_bill
from quotaguard.ibm.models import Job, JobMetrics, JobStatus, structure
from quotaguard.ibm.sansio import build_get_job, decipher_job

END = datetime(2026, 5, 1, 12, tzinfo=UTC)
BOUND = timedelta(hours=24)
CEILING = Decimal(3600)
RAN = {"created": "2026-05-01T10:00:00Z", "running": "2026-05-01T11:00:00Z"}
QUEUED = {"created": "2026-05-01T10:00:00Z", "running": None}


def job(status: str, **state: Any) -> Job:
    body = {
        "id": "j1",
        "status": status,
        "state": {"status": status, **state},
        "created": "2026-05-01T11:00:00Z",
    }
    return decipher_job(build_get_job("j1"), Response(200, {}, json.dumps(body).encode(), ""))


def metrics(usage: dict[str, Any], timestamps: dict[str, Any] | None = RAN) -> JobMetrics:
    data: dict[str, Any] = {"usage": usage}
    if timestamps is not None:
        data["timestamps"] = {**timestamps, "finished": "2026-05-01T12:00:00Z"}
    return structure(data, JobMetrics)


def bill(j: Job, m: JobMetrics, after: timedelta = timedelta(0)) -> JobBill:
    return job_bill(j, m, ceiling=CEILING, now=END + after, pending_bound=BOUND)


@pytest.mark.parametrize(
    ("usage", "final", "billed"),
    [
        ({"qpu_charge_time_seconds": 0, "status": "pending"}, False, 0),
        ({"qpu_charge_time_seconds": 12}, False, 12),  # absent status: pending (the SDK)
        ({"qpu_charge_time_seconds": 12, "status": "complete"}, True, 12),
        ({"qpu_charge_time_seconds": 12, "status": "Pending "}, False, 12),
        ({"quantum_seconds": 7, "seconds": 9}, True, 9),  # older API: larger; no status
        ({"quantum_seconds": 9, "seconds": 7}, True, 9),
        ({"seconds": 5}, True, 5),
        ({"qpu_charge_time_seconds": 8, "seconds": 11, "status": "complete"}, True, 11),
        ({}, False, None),
        ({"status": "complete"}, True, None),
    ],
)
def test_usage_final_and_billed(usage: dict[str, Any], final: bool, billed: int | None) -> None:
    read = metrics(usage).usage
    assert read.final is final
    assert read.billed_seconds == (None if billed is None else Decimal(billed))


@pytest.mark.parametrize(
    ("status", "state", "usage", "timestamps", "after", "expected"),
    [
        # A final figure bills, whatever the status.
        ("Completed", {}, {"qpu_charge_time_seconds": 30, "status": "complete"}, RAN, 0, 30),
        ("Failed", {}, {"qpu_charge_time_seconds": 30, "status": "complete"}, RAN, 0, 30),
        ("Completed", {}, {"quantum_seconds": 7, "seconds": 9}, RAN, 0, 9),
        # Not final: hold, then the ceiling past the bound (from the job's end).
        ("Completed", {}, {"qpu_charge_time_seconds": 0, "status": "pending"}, RAN, 0, None),
        ("Completed", {}, {"qpu_charge_time_seconds": 0, "status": "pending"}, RAN, 23, None),
        ("Completed", {}, {"qpu_charge_time_seconds": 0, "status": "pending"}, RAN, 24, 3600),
        ("Failed", {}, {}, RAN, 1, None),
        ("Failed", {}, {}, RAN, 24, 3600),
        ("Cancelled", {"reason": "Ran too long", "reason_code": 1305}, {}, QUEUED, 0, None),
        ("Cancelled", {"reasonCode": 1305}, {}, QUEUED, 24, 3600),
        ("Cancelled - Ran too long", {}, {}, None, 24, 3600),
        ("Cancelled", {}, {}, None, 0, None),  # no timestamps: it may have run
        # Shown never to have started: 0.
        ("Cancelled", {}, {}, QUEUED, 0, 0),
        ("Failed", {}, {"status": "pending"}, QUEUED, 0, 0),
        ("Cancelled", {}, {"qpu_charge_time_seconds": 0, "status": "pending"}, QUEUED, 0, 0),
    ],
)
def test_job_bill(
    status: str,
    state: dict[str, Any],
    usage: dict[str, Any],
    timestamps: dict[str, Any] | None,
    after: int,
    expected: int | None,
) -> None:
    got = bill(job(status, **state), metrics(usage, timestamps), timedelta(hours=after))
    assert got.seconds == (None if expected is None else Decimal(expected))
    assert got.at_ceiling is (expected == CEILING)


def test_the_bound_falls_back_to_the_jobs_creation() -> None:
    no_end = structure({"usage": {"status": "pending"}}, JobMetrics)
    created = Job("j1", JobStatus.COMPLETED, created=END)
    assert bill(created, no_end, timedelta(hours=23)).seconds is None
    assert bill(created, no_end, timedelta(hours=24)) == JobBill(CEILING, at_ceiling=True)
    # Nothing dates the job at all: nothing to wait from; the most it could cost.
    assert bill(Job("j1", JobStatus.COMPLETED), no_end) == JobBill(CEILING, at_ceiling=True)


@pytest.mark.parametrize(
    ("body", "status", "ran_too_long"),
    [
        (
            {"status": "Cancelled", "state": {"status": "Cancelled", "reason_code": 1305}},
            JobStatus.CANCELLED,
            True,
        ),
        ({"state": {"status": "Cancelled", "reason": "Ran too long"}}, JobStatus.CANCELLED, True),
        ({"state": {"status": "CANCELLED", "reasonCode": 1305}}, JobStatus.CANCELLED, True),
        ({"status": "Cancelled - Ran too long"}, JobStatus.CANCELLED, True),
        ({"status": "Cancelled", "state": {"status": "Cancelled"}}, JobStatus.CANCELLED, False),
        ({"status": "Failed", "state": {"reason": "bad input"}}, JobStatus.FAILED, False),
    ],
)
def test_job_reply_status_and_reason(
    body: dict[str, Any], status: JobStatus, ran_too_long: bool
) -> None:
    reply = Response(200, {}, json.dumps({"id": "j1", **body}).encode(), "")
    read = decipher_job(build_get_job("j1"), reply)
    assert (read.status, read.ran_too_long) == (status, ran_too_long)
