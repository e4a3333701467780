"""What IBM will bill for a job that ended: the figure to commit, or to keep holding.

Pure: the job status reply, its metrics, the ceiling that was reserved and ``now`` in; a
:class:`JobBill` out. The guard's IBM adapter asks the provider and logs; this decides.

- A final usage figure bills, whatever the job's status: the larger of the figures present
  (:attr:`JobUsage.billed_seconds`).
- A failed or cancelled job the provider shows never started (its metrics' ``timestamps`` have
  no ``running``, and it was not cancelled for running too long) bills 0.
- Otherwise the figure is not final yet: keep the hold. Once ``pending_bound`` has passed since
  the job ended (``timestamps.finished``; else its creation, the earliest it could have ended)
  bill the ceiling, the most IBM lets it cost.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from quotaguard.ibm.models import Job, JobMetrics, JobStatus

__all__ = ["JobBill", "job_bill"]


@attrs.frozen
class JobBill:
    #: Seconds to commit; None: not known yet, keep the hold.
    seconds: Decimal | None
    #: True when ``seconds`` is the ceiling because no final figure came within the bound.
    at_ceiling: bool = False


def never_started(job: Job, metrics: JobMetrics) -> bool:
    """Whether IBM shows the job ended without ever running (cancelled or failed while queued).

    Only the metrics' ``timestamps`` tell (qiskit-ibm-runtime 0.51 reads
    ``metrics()["timestamps"]["running"]`` in ``RuntimeJobV2.properties``); metrics without
    timestamps prove nothing, and "Ran too long" means it ran.
    """
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED) or job.ran_too_long:
        return False
    return metrics.timestamps is not None and metrics.timestamps.running is None


def job_bill(
    job: Job, metrics: JobMetrics, *, ceiling: Decimal, now: datetime, pending_bound: timedelta
) -> JobBill:
    """What to commit for ``job`` (final status) given its ``metrics``; see the module."""
    if metrics.usage.final and (seconds := metrics.usage.billed_seconds) is not None:
        return JobBill(seconds)
    if never_started(job, metrics):
        return JobBill(Decimal(0))
    stamps = metrics.timestamps
    ended = stamps.finished if stamps is not None and stamps.finished else None
    since = ended or (stamps.created if stamps is not None and stamps.created else job.created)
    if since is None or now - since >= pending_bound:
        return JobBill(ceiling, at_ceiling=True)
    return JobBill(None)
