"""The guard's IBM side: instance usage cached with a TTL, estimates, job settlement."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Budget, Estimate, Violation
from quotaguard.errors import BudgetUnavailable, InvalidInput
from quotaguard.guard.cache import CachedState, check_not_future
from quotaguard.ibm import rules
from quotaguard.ibm.models import JobStatus
from quotaguard.ibm.work import IBMJob, IBMSession
from quotaguard.ledger.base import Ledger

if TYPE_CHECKING:
    from quotaguard.ibm.client import IBMRuntimeClient
    from quotaguard.ibm.models import GetUsageResponse, Session

__all__ = ["IBMAdapter"]

log = logging.getLogger("quotaguard.guard")

#: External ids of sessions carry this prefix so settlement knows what to ask IBM for.
SESSION_PREFIX = "ibm-session:"


class IBMAdapter:
    provider = "ibm"
    unit = Unit.SECONDS

    def __init__(
        self,
        client: IBMRuntimeClient,
        *,
        policy: rules.IBMPolicy | None,
        ledger: Ledger,
        clock: Callable[[], datetime],
        ttl: timedelta,
        max_staleness: timedelta,
    ) -> None:
        self.client = client
        self.policy = policy or rules.IBMPolicy()
        self.ledger = ledger
        self.clock = clock
        self.key = rules.budget_key(client.service_crn)
        self._usage: CachedState[GetUsageResponse] = CachedState(
            self.key, self._fetch, ttl=ttl, max_staleness=max_staleness, clock=clock
        )
        self._sessions: dict[str, CachedState[Session]] = {}
        self._ttl, self._max_staleness = ttl, max_staleness
        self._warned = False

    def __repr__(self) -> str:
        return f"IBMAdapter(budget={self.key!r})"

    def handles(self, work: object) -> bool:
        return isinstance(work, (IBMJob, IBMSession))

    async def _fetch(self) -> GetUsageResponse:
        at = self.clock()
        usage = await self.client.get_usage()
        if usage.usage_period is not None:
            # A period that has not begun yet is no report of this one: nonsense, not a reset.
            start = usage.usage_period.start_time
            check_not_future(start, at, "$.usage_period.start_time", self.provider)
        instance_limit = None
        if usage.usage_limit_seconds is None:
            # Some instances report their limit only on /v1/instance: one more GET per refresh,
            # only for them, rather than treat a limited instance as unlimited.
            instance_limit = (await self.client.get_instance()).limit_seconds
        budget = rules.instance_budget(
            usage, self.policy, at, crn=self.client.service_crn, instance_limit=instance_limit
        )
        reported = rules.reported_used(usage)
        await self.ledger.put_budget(budget)
        dated = await self._report_time(budget, at)
        # Finished jobs only: a bound hold is never inside it (covers_sent=False).
        await self.ledger.record_report(budget.key, reported, at=dated, covers_sent=False)
        return usage

    async def _report_time(self, budget: Budget, at: datetime) -> datetime:
        """When to date IBM's usage figure; the ledger counts local spend after it on top.

        IBM's figure counts finished jobs only, and lags them: which of this ledger's recent
        jobs it holds cannot be told (on a shared instance, other users' jobs make up any
        part of it). So take the larger reading: date it back by the policy's lag, and every
        job committed within the lag counts on top (twice at worst, for the lag, never
        zero). Not before this window began (the report would not count), nor before the last
        report (an older report never replaces a newer one).
        """
        state = await self.ledger.state(budget.key, now=at)
        dated = at - timedelta(seconds=self.policy.usage_report_lag_seconds)
        start, _ = budget.window.bounds(at)
        return max(d for d in (dated, start, state.reported_at) if d is not None)

    async def _session_remaining(self, session_id: str) -> Decimal:
        cache = self._sessions.get(session_id)
        if cache is None:
            cache = CachedState(
                f"ibm-session:{session_id}",
                lambda: self._fetch_session(session_id),
                ttl=self._ttl,
                max_staleness=self._max_staleness,
                clock=self.clock,
            )
            self._sessions[session_id] = cache
        return (await cache.get()).remaining_seconds(self.clock())

    async def _fetch_session(self, session_id: str) -> Session:
        at = self.clock()
        session = await self.client.get_session(session_id)
        # A session started in the future would have more than its max_ttl left.
        check_not_future(session.started_at, at, "$.started_at", self.provider)
        return session

    async def estimate(
        self, work: IBMJob | IBMSession, *, now: datetime, fail_open: bool
    ) -> Estimate:
        usage: GetUsageResponse | None = None
        if not (isinstance(work, IBMJob) and work.simulator):
            try:
                usage = await self._usage.get()
            except BudgetUnavailable:
                if not fail_open:
                    raise
                usage = self._usage.last  # keep charging what we last knew, if anything
                if not self._warned:
                    self._warned = True
                    log.warning("%s: usage unavailable; admitting (fail_mode=open)", self.key)
        remaining, held = None, True
        if isinstance(work, IBMJob) and work.session_id is not None:
            remaining = await self._session_remaining(work.session_id)
            session = await self.ledger.find_external(SESSION_PREFIX + work.session_id)
            held = session is not None and not session.ended
        estimate = rules.estimate(
            work,
            usage=usage,
            policy=self.policy,
            budget_key=self.key,
            session_remaining=remaining,
            session_held=held,
        )
        if usage is None and estimate.charges and not await self._known():
            # Failing open before the instance budget was ever fetched: there is no budget to
            # hold against (reserving would raise UnknownBudget). User budgets still count.
            charges = tuple(c for c in estimate.charges if c.budget != self.key)
            estimate = attrs.evolve(estimate, charges=charges)
        return estimate

    async def _known(self) -> bool:
        try:
            await self.ledger.get_budget(self.key)
        except InvalidInput:  # UnknownBudget
            return False
        return True

    def explain(self, work: Any, violations: Sequence[Violation]) -> tuple[Violation, ...]:
        return tuple(rules.explain_rejection(work, v) for v in violations)

    def external_id(self, work: object, result: object) -> str | None:
        found: object = result
        if isinstance(result, Mapping):
            found = result.get("id")
        elif not isinstance(result, str):
            # qiskit_ibm_runtime: Session.session_id for a session, RuntimeJobV2.job_id() for a
            # job (whose own .session_id is a blocking HTTP call, and the wrong id to bind).
            found = getattr(
                result, "session_id" if isinstance(work, IBMSession) else "job_id", None
            )
            if callable(found):
                found = found()
        if not isinstance(found, str) or not found:
            return None
        return SESSION_PREFIX + found if isinstance(work, IBMSession) else found

    def owns(self, external_id: str) -> bool:
        return not external_id.startswith("arn:")

    async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None:
        if external_id.startswith(SESSION_PREFIX):
            # Sessions bill wall-clock time; settle when the session has ended.
            session = await self.client.get_session(external_id.removeprefix(SESSION_PREFIX))
            return session.elapsed_seconds(self.clock()) if session.ended else None
        if reserved == 0:
            return Decimal(0)  # a job inside a held session: the session bills its time
        job = await self.client.get_job(external_id)
        if not job.status.final:
            return None
        seconds = (await self.client.get_job_metrics(external_id)).quantum_seconds
        if seconds is None:
            # A finished job without a usage figure yet: a completed one ran, so wait for the
            # figure rather than commit 0; a failed or cancelled one before running cost 0.
            return None if job.status is JobStatus.COMPLETED else Decimal(0)
        return seconds

    async def sync(self) -> None:
        await self._usage.refresh()

    async def aclose(self) -> None:
        return None
