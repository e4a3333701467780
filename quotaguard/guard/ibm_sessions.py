"""The guard's IBM sessions and batches: what their jobs add to a hold, and how they settle.

A dedicated session can bill ``max_time`` + the largest ceiling of a job admitted into it (a
job still running when ``max_time`` ends goes on). Its reservation holds ``max_time`` from
the open; each job admitted into it is a reservation of what it raises that hold by,
max(0, ceiling − largest ceiling admitted so far), taken in the same atomic check-and-hold
as any work (``Ledger.reserve``), and tied to the session: it settles only after the
session's own reservation has (at the session's billed wall-clock time), so the raised hold
lasts as long as the session can still bill. A batch holds nothing itself; its jobs hold
and settle at their own ceilings and usage. docs/ibm.md, "Session formulas", has the why.

The largest ceiling admitted is kept per guard, in memory: another process (or this one,
restarted) starts again from 0, so its jobs hold more than needed, never less.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quotaguard.engine.model import ReservationState
from quotaguard.guard.cache import CachedState, check_not_future
from quotaguard.ibm import rules
from quotaguard.ibm.work import IBMJob
from quotaguard.ledger.base import Ledger

if TYPE_CHECKING:
    from quotaguard.ibm.client import IBMRuntimeClient
    from quotaguard.ibm.models import Job, Session

__all__ = ["SESSION_PREFIX", "IBMSessions"]

log = logging.getLogger("quotaguard.guard")

#: The client's keywords for an instance (``{"instance": crn}``; none for its own).
Where = dict[str, Any]

#: External ids of sessions carry this prefix so settlement knows what to ask IBM for.
SESSION_PREFIX = "ibm-session:"


class _NotHeld(enum.Enum):
    NOT_HELD = enum.auto()


#: ``IBMSessions.job_actual``'s answer for a job not in a dedicated session the guard holds.
NOT_HELD = _NotHeld.NOT_HELD


class IBMSessions:
    def __init__(
        self,
        client: IBMRuntimeClient,
        *,
        policy: rules.IBMPolicy,
        ledger: Ledger,
        clock: Callable[[], datetime],
        ttl: timedelta,
        max_staleness: timedelta,
    ) -> None:
        self.client, self.policy, self.ledger, self.clock = client, policy, ledger, clock
        self._ttl, self._max_staleness = ttl, max_staleness
        self._sessions: dict[str, CachedState[Session]] = {}
        #: Session id -> the largest ceiling of a job admitted into it by this guard.
        self._covered: dict[str, Decimal] = {}

    # -- estimates ----------------------------------------------------------------------------

    async def job_terms(self, work: IBMJob, *, where: Where) -> dict[str, Any]:
        """The session arguments of :func:`rules.estimate` for a job (none outside one);
        ``where``: the client's keywords for the job's instance."""
        if work.session_id is None:
            return {}
        session = await self._session(work.session_id, where)
        held = await self.ledger.find_external(SESSION_PREFIX + work.session_id)
        return {
            "session_remaining": session.remaining_seconds(self.clock()),
            "session_held": held is not None and not held.ended,
            "session_mode": session.mode,
            "session_covered": self._covered.get(work.session_id, Decimal(0)),
        }

    def admitted(self, work: IBMJob) -> None:
        """A job was sent into its session: its ceiling is held on top of ``max_time`` now."""
        if work.session_id is not None and not work.simulator:  # a simulator job holds nothing
            ceiling = rules.job_ceiling(work, self.policy)
            self._covered[work.session_id] = max(
                self._covered.get(work.session_id, Decimal(0)), ceiling
            )

    async def _session(self, session_id: str, where: Where) -> Session:
        cache = self._sessions.get(session_id)
        if cache is None:
            cache = CachedState(
                f"ibm-session:{session_id}",
                lambda: self._fetch_session(session_id, where),
                ttl=self._ttl,
                max_staleness=self._max_staleness,
                clock=self.clock,
            )
            self._sessions[session_id] = cache
        return await cache.get()

    async def _fetch_session(self, session_id: str, where: Where) -> Session:
        at = self.clock()
        session = await self.client.get_session(session_id, **where)
        # A session started in the future would have more than its max_ttl left.
        check_not_future(session.started_at, at, "$.started_at", "ibm")
        return session

    # -- settlement ---------------------------------------------------------------------------

    async def session_actual(self, session_id: str, *, where: Where) -> Decimal | None:
        """A session's bill once it ended: its wall-clock time; a batch's jobs bill their own."""
        session = await self.client.get_session(session_id, **where)
        if not session.ended:
            return None
        self._covered.pop(session_id, None)
        self._sessions.pop(session_id, None)
        return Decimal(0) if session.mode == "batch" else session.elapsed_seconds(self.clock())

    async def job_actual(self, job: Job, *, where: Where) -> Decimal | _NotHeld | None:
        """A job in a dedicated session the guard holds settles after the session did: at
        what it ran past the session's end, if IBM closed the session before the job ended
        (0 when the session's time includes it). ``NOT_HELD`` for any other job."""
        if job.session_id is None:
            return NOT_HELD
        held = await self.ledger.find_external(SESSION_PREFIX + job.session_id)
        if held is None:
            return NOT_HELD
        session = await self.client.get_session(job.session_id, **where)
        if session.mode == "batch":
            return NOT_HELD
        if held.state not in (ReservationState.COMMITTED, ReservationState.RELEASED):
            return None  # the session can still bill; this job's part of the hold stays
        if not job.status.final:
            return None
        if session.closed_at is None:
            return Decimal(0)
        timestamps = (await self.client.get_job_metrics(job.id, **where)).timestamps
        finished = timestamps.finished if timestamps is not None else None
        if finished is None or finished <= session.closed_at:
            return Decimal(0)
        return Decimal(str((finished - session.closed_at).total_seconds()))
