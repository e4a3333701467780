"""How the emulator's IBM sessions and batches run out, and what they bill.

As IBM documents it (the seeds' max-execution-time pages, qiskit-ibm-runtime's
``Session.usage()``): a session's timer starts with its first job; when ``max_ttl`` has passed
(or the session was closed) it takes no more jobs, its queued jobs fail, and its running jobs
go on. A dedicated session bills wall-clock time "from when the first job starts until the
session goes inactive, is closed, or when its last job completes, whichever happens last"; a
batch bills "the amount of time all jobs spend on the QPU", which its jobs report themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quotaguard.testing.ibm.state import IBMJobState, IBMSessionState

__all__ = ["accepting", "advance_session", "session_body"]

#: The reason IBM gives a job still queued when its session ends.
SESSION_ENDED = "Failed - Session ended before the job ran"


def _deadline(session: IBMSessionState) -> datetime | None:
    if session.started_at is None:
        return None
    return session.started_at + timedelta(seconds=session.max_ttl)


def _stop(session: IBMSessionState) -> datetime | None:
    """When the session stopped taking jobs: its max_ttl ran out, or it was closed."""
    ends = (session.stopped_at, _deadline(session))
    return min((e for e in ends if e is not None), default=None)


def advance_session(
    session: IBMSessionState, jobs: Iterable[IBMJobState], now: datetime
) -> Decimal | None:
    """Move the session on to ``now``: fail its queued jobs once max_ttl ran out (a closed
    session still runs the jobs it has), close it once its last job ended. Returns the
    seconds to bill its instance when it closes now, else None."""
    if session.closed_at is not None:
        return None
    mine = list(jobs)
    deadline = _deadline(session)
    if deadline is not None and now >= deadline:
        for job in mine:
            if job.status == "Queued":
                job.status, job.reason, job.finished = "Failed", SESSION_ENDED, deadline
    stop = _stop(session)
    if stop is None or now < stop or any(j.status in ("Queued", "Running") for j in mine):
        return None  # running jobs go on past max_ttl, and so does the bill
    finished = [job.finished for job in mine if job.finished is not None]
    session.closed_at = max([stop, *finished])
    if session.mode == "batch" or session.started_at is None:
        return None  # a batch's jobs bill their own QPU time; an unstarted session nothing
    return Decimal(str((session.closed_at - session.started_at).total_seconds()))


def accepting(session: IBMSessionState, now: datetime) -> bool:
    stop = _stop(session)
    return session.accepting_jobs and session.closed_at is None and (stop is None or now < stop)


def session_body(
    session: IBMSessionState, jobs: Iterable[IBMJobState], now: datetime
) -> dict[str, Any]:
    """``GET /v1/sessions/{id}`` for a session already advanced to ``now``."""
    mine = list(jobs)
    if session.mode == "batch":
        elapsed = sum((j.quantum_seconds or Decimal(0) for j in mine), Decimal(0))
    elif session.started_at is None:
        elapsed = Decimal(0)
    else:
        end = session.closed_at or now
        elapsed = Decimal(str((end - session.started_at).total_seconds()))
    state = "open" if session.started_at is None else "active"
    if session.closed_at is not None:
        state = "closed"
    return {
        "id": session.id,
        "backend_name": session.backend,
        "mode": session.mode,
        "state": state,
        "max_ttl": session.max_ttl,
        "active_ttl": session.active_ttl,
        "interactive_ttl": session.interactive_ttl,
        "started_at": session.started_at,
        "activated_at": session.started_at,
        "closed_at": session.closed_at,
        "elapsed_time": elapsed,
        "accepting_jobs": accepting(session, now),
    }
