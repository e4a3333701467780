"""The guard's IBM side: instance usage cached with a TTL, estimates, job settlement."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Budget, Estimate, Reservation, Violation
from quotaguard.errors import BudgetUnavailable, InvalidInput, NotFound, PermissionDenied
from quotaguard.guard.cache import CachedState, check_not_future
from quotaguard.guard.ibm_instance import InstanceReader, InstanceReading
from quotaguard.guard.ibm_sessions import NOT_HELD, SESSION_PREFIX, IBMSessions
from quotaguard.guard.stamps import first_found, ibm_tag, may_have_sent
from quotaguard.ibm import rules
from quotaguard.ibm.billing import job_bill
from quotaguard.ibm.work import IBMJob, IBMSession
from quotaguard.ledger.base import Ledger

if TYPE_CHECKING:
    from quotaguard.ibm.client import IBMRuntimeClient
    from quotaguard.ibm.models import GetUsageResponse

__all__ = ["SESSION_PREFIX", "IBMAdapter"]

log = logging.getLogger("quotaguard.guard")


class _Unreadable(Exception):
    """Another instance's state answered 403/404: carried past the cache (which would make it
    BudgetUnavailable, admitted by fail_mode="open") to become ``ibm.instance.unreadable``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


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
        alert_levels: tuple[int, ...] = (),
    ) -> None:
        self.client = client
        self.policy = policy or rules.IBMPolicy()
        #: The alert levels every ``ibm:`` budget this adapter puts carries.
        self.alert_levels = alert_levels
        self.ledger = ledger
        self.clock = clock
        self.key = rules.budget_key(client.service_crn)
        self._reader = InstanceReader(client, self.policy)
        #: The last reading of each instance (the client's own and any work names), by CRN:
        #: what the guard charges against, and what ``quotaguard status`` prints.
        self.readings: dict[str, InstanceReading] = {}
        self._usage: CachedState[GetUsageResponse] = CachedState(
            self.key, self._fetch, ttl=ttl, max_staleness=max_staleness, clock=clock
        )
        #: Other instances that work names (``IBMJob(instance=...)``), by CRN.
        self._others: dict[str, CachedState[GetUsageResponse]] = {}
        self._ttl, self._max_staleness = ttl, max_staleness
        self.sessions = IBMSessions(
            client, policy=self.policy, ledger=ledger, clock=clock, ttl=ttl,
            max_staleness=max_staleness,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"IBMAdapter(budget={self.key!r})"

    def handles(self, work: object) -> bool:
        return isinstance(work, (IBMJob, IBMSession))

    async def _fetch(self, crn: str | None = None) -> GetUsageResponse:
        at = self.clock()
        reading = await self._reader.read(crn)
        usage = reading.usage
        if usage.usage_period is not None:
            # A period that has not begun yet is no report of this one: nonsense, not a reset.
            start = usage.usage_period.start_time
            check_not_future(start, at, "$.usage_period.start_time", self.provider)
        budget = rules.instance_budget(usage, self.policy, at, crn=reading.crn, limit=reading.limit)
        budget = attrs.evolve(budget, alert_levels=self.alert_levels)
        self.readings[reading.crn] = reading
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

    def _instance_of(self, work: IBMJob | IBMSession) -> str:
        return work.instance or self.client.service_crn

    def _usage_of(self, crn: str) -> CachedState[GetUsageResponse]:
        if crn == self.client.service_crn:
            return self._usage
        cache = self._others.get(crn)
        if cache is None:

            async def fetch() -> GetUsageResponse:
                try:
                    return await self._fetch(crn)
                except (PermissionDenied, NotFound) as exc:
                    # Not an outage (no fail mode admits it): this key may not read that one.
                    raise _Unreadable(exc) from exc

            cache = CachedState(
                rules.budget_key(crn),
                fetch,
                ttl=self._ttl,
                max_staleness=self._max_staleness,
                clock=self.clock,
            )
            self._others[crn] = cache
        return cache

    async def estimate(
        self, work: IBMJob | IBMSession, *, now: datetime, fail_open: bool
    ) -> Estimate:
        usage: GetUsageResponse | None = None
        stale: tuple[str, ...] = ()
        crn = self._instance_of(work)
        key = rules.budget_key(crn)
        cache = self._usage_of(crn)
        if not (isinstance(work, IBMJob) and work.simulator):
            try:
                usage = await cache.get()
            except _Unreadable as exc:
                return rules.unreadable(work, key, crn, exc.error)
            except BudgetUnavailable:
                if not fail_open:
                    raise
                usage = cache.last  # keep charging what we last knew, if anything
                stale = (key,)  # the guard emits a (rate-limited) fail_open event
        reading = self._reading_of(crn, usage)
        terms: dict[str, Any]
        if isinstance(work, IBMJob):
            terms = await self.sessions.job_terms(work, where=self._where(crn))
        else:  # the plan's session maximum, from the same reading as the plan
            terms = {"plan_max_ttl": None if reading is None else reading.plan_max_ttl}
        estimate = rules.estimate(
            work,
            usage=usage,
            policy=self.policy,
            budget_key=key,
            limit=None if reading is None else reading.limit,
            **terms,
        )
        if usage is None and estimate.charges and not await self._known(key):
            # Failing open before the instance budget was ever fetched: there is no budget to
            # hold against (reserving would raise UnknownBudget). User budgets still count.
            charges = tuple(c for c in estimate.charges if c.budget != key)
            estimate = attrs.evolve(estimate, charges=charges)
        return attrs.evolve(estimate, fail_open=stale) if stale else estimate

    def _reading_of(self, crn: str, usage: GetUsageResponse | None) -> InstanceReading | None:
        """The reading ``usage`` came from (none when failing open with nothing read)."""
        reading = self.readings.get(crn)
        return reading if reading is not None and reading.usage is usage else None

    async def _known(self, key: str) -> bool:
        try:
            await self.ledger.get_budget(key)
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
        if isinstance(work, IBMJob):
            self.sessions.admitted(work)
        return SESSION_PREFIX + found if isinstance(work, IBMSession) else found

    def owns(self, external_id: str) -> bool:
        return not external_id.startswith("arn:")

    def _where(self, crn: str) -> dict[str, Any]:
        """The client's keywords for ``crn``: none for its own instance."""
        return {} if crn == self.client.service_crn else {"instance": crn}

    async def _where_bound(self, external_id: str) -> dict[str, Any]:
        """The instance work bound to ``external_id`` was charged to, as client keywords: the
        reservation's IBM budget names it (a job may name another instance than the client's)."""
        reservation = await self.ledger.find_external(external_id)
        keys = [c.budget for c in reservation.charges] if reservation is not None else []
        crns = [k.removeprefix("ibm:") for k in keys if k.startswith("ibm:")]
        return self._where(crns[0]) if len(crns) == 1 else {}

    async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None:
        where = await self._where_bound(external_id)
        if external_id.startswith(SESSION_PREFIX):
            session_id = external_id.removeprefix(SESSION_PREFIX)
            return await self.sessions.session_actual(session_id, where=where)
        job = await self.client.get_job(external_id, **where)
        in_session = await self.sessions.job_actual(job, where=where)
        if in_session is not NOT_HELD:
            return in_session
        if not job.status.final:
            return None
        metrics = await self.client.get_job_metrics(external_id, **where)
        bound = timedelta(seconds=self.policy.usage_pending_max_seconds)
        bill = job_bill(job, metrics, ceiling=reserved, now=self.clock(), pending_bound=bound)
        if bill.at_ceiling:
            log.warning(
                "settle: IBM gave no final usage for job %s (%s) within %s of its end; "
                "committing its ceiling, %s s",
                external_id,
                job.status.value,
                bound,
                reserved,
            )
        return bill.seconds

    async def find_sent(self, reservation: Reservation) -> str | None:
        """The job a guarded send made for ``reservation``: tagged ``quotaguard:<id>``, looked
        up on the instance the hold charges."""
        if not may_have_sent(reservation, lambda key: key.startswith("ibm:")):
            return None
        crns = {
            c.budget.removeprefix("ibm:")
            for c in reservation.charges
            if c.budget.startswith("ibm:")
        }
        where = self._where(next(iter(crns))) if len(crns) == 1 else {}
        lookup = self.client.find_jobs(ibm_tag(reservation.id), **where)
        return await first_found(lookup, reservation)

    async def sync(self) -> None:
        await self._usage.refresh()
        for cache in list(self._others.values()):
            with contextlib.suppress(_Unreadable):
                await cache.refresh()

    async def aclose(self) -> None:
        return None
