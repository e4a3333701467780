"""Seeded state of the emulator's IBM half, and the methods tests use to seed and drive it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from quotaguard.testing.ibm.sessions import advance_session

__all__ = [
    "CATALOG_PLAN_IDS",
    "CATALOG_PLAN_NAMES",
    "OPEN_PLAN_SECONDS",
    "RAN_TOO_LONG",
    "STATUSES",
    "IBMInstanceState",
    "IBMJobState",
    "IBMSessionState",
    "IBMState",
]

OPEN_PLAN_SECONDS = Decimal(600)
#: The plan ids the emulator serves, Global-Catalog style: opaque, naming no plan (the live
#: service's are catalog identifiers; the spec's example is ``flex-plan-id-1``). These are the
#: emulator's own; the plan is told from the account route's ``subscription_name``.
CATALOG_PLAN_IDS = {
    "open": "3f6c2a10-7d4e-4b8a-9c51-0e2d8f7a6b13",
    "pay-as-you-go": "8a1d5e27-2c3b-4f60-a9d4-6b7e1c0f5a82",
    "flex": "c47e9b03-5a18-4d2f-8e6c-1f3a7d9b2e40",
    "premium": "e2b8d6f1-9c07-4a35-b1e8-4d5c3a2f7091",
}
CATALOG_PLAN_NAMES = {
    "open": "Open Plan",
    "pay-as-you-go": "Pay-As-You-Go Plan",
    "flex": "Flex Plan",
    "premium": "Premium Plan",
}
_CATALOG_PRICING = {"open": "free", "pay-as-you-go": "paygo", "flex": "paid", "premium": "paid"}
STATUSES = ("Queued", "Running", "Completed", "Failed", "Cancelled")
#: The ``state.reason_code`` IBM gives a job it cancelled at its ceiling ("Cancelled - Ran too
#: long"); qiskit-ibm-runtime 0.51 (``RuntimeJobV2._status_from_job_response``) reads it.
RAN_TOO_LONG = 1305


@attrs.define
class IBMInstanceState:
    crn: str
    account_id: str
    plan_id: str
    limit_seconds: Decimal | None
    consumed_seconds: Decimal
    usage_period: tuple[datetime, datetime] | None
    backends: list[str]
    allocation_seconds: Decimal | None = None
    #: False: the usage endpoint omits the limit, which only ``/v1/instance`` reports (as some
    #: live instances do).
    usage_reports_limit: bool = True
    #: The plan behind ``plan_id`` (open, pay-as-you-go, flex, premium), for the emulator's
    #: own rules; ``None`` for a plan id it was given as is.
    plan: str | None = None

    @property
    def effective_limit(self) -> Decimal | None:
        """What the server enforces: the instance limit, else the plan's allocation."""
        return self.allocation_seconds if self.limit_seconds is None else self.limit_seconds

    @property
    def limit_reached(self) -> bool | None:
        limit = self.effective_limit
        return None if limit is None else self.consumed_seconds >= limit


@attrs.define
class IBMJobState:
    id: str
    crn: str
    backend: str
    status: str
    created: datetime
    session_id: str | None = None
    cost: int | None = None
    quantum_seconds: Decimal | None = None
    reason: str | None = None
    program_id: str = "sampler"
    running: datetime | None = None
    finished: datetime | None = None
    tags: list[str] = attrs.Factory(list)
    #: The older API's ``seconds`` (system execution time) when it differs from
    #: ``quantum_seconds``; what the emulator bills. None: the same as ``quantum_seconds``.
    system_seconds: Decimal | None = None
    #: The usage figure is not final yet (``usage.status: "pending"`` on the current API).
    usage_pending: bool = False
    reason_code: int | None = None

    @property
    def billed_seconds(self) -> Decimal | None:
        return self.quantum_seconds if self.system_seconds is None else self.system_seconds


@attrs.define
class IBMSessionState:
    id: str
    crn: str
    backend: str
    mode: str
    max_ttl: int
    active_ttl: int | None
    interactive_ttl: int | None
    started_at: datetime | None
    closed_at: datetime | None = None
    accepting_jobs: bool = True
    #: When it was closed (``accepting_jobs`` false): it runs the jobs it has, then ends.
    stopped_at: datetime | None = None


def _catalog_entry(entry_id: str, display_name: str, pricing: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": entry_id,
        "name": display_name.lower().replace(" ", "-"),
        "kind": "plan",
        "overview_ui": {"en": {"display_name": display_name}},
    }
    if pricing is not None:
        entry["metadata"] = {"pricing": {"type": pricing}}
    return entry


class IBMState:
    """API keys, issued tokens, instances, jobs and sessions; ``IBMService`` serves them."""

    def __init__(self, *, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        #: Lifetime of new IAM tokens, in seconds.
        self.token_lifetime = 3600
        self.api_keys: dict[str, str] = {}
        self.tokens: dict[str, tuple[str, datetime]] = {}
        self.instances: dict[str, IBMInstanceState] = {}
        self.account_plans: dict[str, list[dict[str, Any]]] = {}
        #: Global Catalog entries by id (served under ``/globalcatalog/api/v1/{id}``).
        self.catalog_entries: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, IBMJobState] = {}
        self.sessions: dict[str, IBMSessionState] = {}
        #: Every ``IBM-API-Version`` a request carried.
        self.api_versions: set[str] = set()
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(instances={len(self.instances)}, jobs={len(self.jobs)})"

    def add_api_key(self, key: str, account_id: str = "test-account") -> None:
        self.api_keys[key] = account_id

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (as an early expiry would): the next call gets 401."""
        self.tokens.clear()

    def add_instance(
        self,
        crn: str,
        *,
        account_id: str | None = None,
        plan_id: str = "premium",
        limit_seconds: Decimal | int | None = None,
        consumed_seconds: Decimal | int = 0,
        usage_period: tuple[datetime, datetime] | None = None,
        backends: Iterable[str] = ("ibm_emulated",),
        allocation_seconds: Decimal | int | None = None,
        usage_reports_limit: bool = True,
    ) -> IBMInstanceState:
        """An instance; ``account_id`` defaults to the CRN's ``a/<account>`` segment.

        ``plan_id`` a plan name (``open``, ``pay-as-you-go``, ``flex``, ``premium``): the
        instance serves that plan's catalog id (:data:`CATALOG_PLAN_IDS`) and its account's
        configuration lists the plan under its catalog name. The open plan's limit and
        allocation default to 600 s (clearing the limit leaves the allocation, as on IBM).
        Any other ``plan_id`` is served as given, a plan nothing tells.
        """
        if account_id is None:
            parts = crn.split(":")
            account_id = parts[6].removeprefix("a/") if len(parts) > 6 else "test-account"
        by_id = {v: k for k, v in CATALOG_PLAN_IDS.items()}
        plan = plan_id if plan_id in CATALOG_PLAN_IDS else by_id.get(plan_id)
        if plan is not None:
            plan_id = CATALOG_PLAN_IDS[plan]
            self.catalog_entries.setdefault(
                plan_id,
                _catalog_entry(plan_id, CATALOG_PLAN_NAMES[plan], _CATALOG_PRICING[plan]),
            )
            if not any(p.get("plan_id") == plan_id for p in self.account_plans.get(account_id, [])):
                self.add_account_plan(
                    account_id,
                    {
                        "plan_id": plan_id,
                        "subscription_id": f"emulated-{plan}",
                        "subscription_name": CATALOG_PLAN_NAMES[plan],
                        "backends": list(backends),
                        "max_ttl": 600 if plan == "open" else 28800,
                    },
                )
        if plan == "open":
            limit_seconds = OPEN_PLAN_SECONDS if limit_seconds is None else limit_seconds
            if allocation_seconds is None:
                allocation_seconds = OPEN_PLAN_SECONDS
        state = IBMInstanceState(
            crn,
            account_id,
            plan_id,
            None if limit_seconds is None else Decimal(limit_seconds),
            Decimal(consumed_seconds),
            usage_period,
            list(backends),
            None if allocation_seconds is None else Decimal(allocation_seconds),
            usage_reports_limit,
            plan,
        )
        self.instances[crn] = state
        return state

    def add_catalog_entry(
        self, entry_id: str, *, display_name: str, pricing_type: str | None = None
    ) -> None:
        """A Global Catalog entry, as qiskit-ibm-runtime reads a plan's name from it."""
        self.catalog_entries[entry_id] = _catalog_entry(entry_id, display_name, pricing_type)

    def add_account_plan(self, account_id: str, plan: dict[str, Any]) -> None:
        """A plan configuration as ``GET /v1/accounts/{id}`` returns it. A ``plan_id`` that is
        a plan name (``premium``) is served as that plan's catalog id, as ``add_instance``
        serves it; it replaces the account's configuration of the same plan id (the one
        ``add_instance`` registered, say), so its ``max_ttl`` is what that plan's sessions get."""
        plan_id = plan.get("plan_id")
        if isinstance(plan_id, str) and plan_id in CATALOG_PLAN_IDS:
            plan_id = CATALOG_PLAN_IDS[plan_id]
            plan = {**plan, "plan_id": plan_id}
        plans = self.account_plans.setdefault(account_id, [])
        plans[:] = [p for p in plans if p.get("plan_id") != plan_id] + [plan]

    def plan_max_ttl(self, instance: IBMInstanceState) -> int:
        """A new session's default max_ttl: the account's configuration for the instance's
        plan (``GET /v1/accounts/{id}``), else 10 min on the open plan and 8 h on others."""
        for plan in self.account_plans.get(instance.account_id, ()):
            ttl = plan.get("max_ttl")
            if plan.get("plan_id") == instance.plan_id and isinstance(ttl, int) and ttl > 0:
                return ttl
        return 600 if instance.plan == "open" else 28800

    def add_job(
        self,
        job_id: str,
        crn: str,
        *,
        backend: str = "ibm_emulated",
        status: str = "Queued",
        quantum_seconds: Decimal | int | None = None,
        session_id: str | None = None,
        cost: int | None = None,
    ) -> IBMJobState:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        job = IBMJobState(
            job_id,
            crn,
            backend,
            status,
            self.clock(),
            session_id,
            cost,
            None if quantum_seconds is None else Decimal(quantum_seconds),
        )
        self.jobs[job_id] = job
        return job

    def set_job_status(self, job_id: str, status: str, reason: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        self.advance_sessions()
        job = self.jobs[job_id]
        job.status, job.reason = status, reason
        if status == "Running":
            job.running = self.clock()
            session = self.sessions.get(job.session_id or "")
            if session is not None and session.started_at is None:
                session.started_at = job.running  # a session's timer starts with its first job
        elif status != "Queued":
            job.finished = self.clock()

    def complete_job(
        self,
        job_id: str,
        quantum_seconds: Decimal | int = 0,
        *,
        seconds: Decimal | int | None = None,
        pending: bool = False,
    ) -> None:
        """Finish a job, counting its usage into its instance's once final.

        ``seconds``: the older API's system execution time, when it differs from
        ``quantum_seconds`` (what the emulator bills). ``pending``: the figure is not final yet
        (``usage.status: "pending"``); :meth:`finalize_usage` makes it final later.
        """
        self._end(job_id, "Completed", quantum_seconds, seconds, pending, ran=True)

    def fail_job(
        self,
        job_id: str,
        quantum_seconds: Decimal | int | None = None,
        *,
        seconds: Decimal | int | None = None,
        pending: bool = False,
        reason: str = "Job failed",
    ) -> None:
        """Fail a job; it ran if it was set ``Running`` first (a ``running`` timestamp)."""
        self._end(job_id, "Failed", quantum_seconds, seconds, pending, reason=reason)

    def cancel_job(
        self,
        job_id: str,
        quantum_seconds: Decimal | int | None = None,
        *,
        seconds: Decimal | int | None = None,
        pending: bool = False,
        ran_too_long: bool = False,
    ) -> None:
        """Cancel a job: while queued (no ``running`` timestamp) unless it was set
        ``Running`` first; ``ran_too_long`` as IBM does at the job's ceiling (it ran)."""
        reason, code = ("Ran too long", RAN_TOO_LONG) if ran_too_long else (None, None)
        self._end(
            job_id, "Cancelled", quantum_seconds, seconds, pending, ran_too_long, reason, code
        )

    def finalize_usage(
        self, job_id: str, quantum_seconds: Decimal | int, *, seconds: Decimal | int | None = None
    ) -> None:
        """Make an ended job's pending usage final, counting it into its instance's."""
        job = self.jobs[job_id]
        job.quantum_seconds = Decimal(quantum_seconds)
        job.system_seconds = None if seconds is None else Decimal(seconds)
        job.usage_pending = False
        self._count(job)

    def _end(
        self,
        job_id: str,
        status: str,
        quantum_seconds: Decimal | int | None,
        seconds: Decimal | int | None,
        pending: bool,
        ran: bool = False,
        reason: str | None = None,
        reason_code: int | None = None,
    ) -> None:
        job = self.jobs[job_id]
        job.quantum_seconds = None if quantum_seconds is None else Decimal(quantum_seconds)
        job.system_seconds = None if seconds is None else Decimal(seconds)
        job.usage_pending = pending
        if ran and job.running is None:
            job.running = self.clock()
        self.set_job_status(job_id, status, reason)
        job.reason_code = reason_code
        if not pending:
            self._count(job)

    def _count(self, job: IBMJobState) -> None:
        instance = self.instances.get(job.crn)
        session = self.sessions.get(job.session_id or "")
        billed = job.billed_seconds
        # A dedicated session bills its wall-clock time when it closes; a batch, its jobs.
        dedicated = session is not None and session.mode != "batch"
        if instance is not None and not dedicated and billed is not None:
            instance.consumed_seconds += billed
        self.advance_sessions()

    def session_jobs(self, session_id: str) -> list[IBMJobState]:
        return [j for j in self.jobs.values() if j.session_id == session_id]

    def advance_sessions(self) -> None:
        """Run every open session on to now: queued jobs fail past max_ttl, sessions whose
        last job ended close, and a closed dedicated session bills its instance."""
        now = self.clock()
        for session in self.sessions.values():
            billed = advance_session(session, self.session_jobs(session.id), now)
            instance = self.instances.get(session.crn)
            if billed is not None and instance is not None:
                instance.consumed_seconds += billed

    def close_session(self, session_id: str) -> None:
        """Stop a session taking jobs, as qiskit-ibm-runtime's ``Session.close()`` does: the
        jobs it has still run, and it ends when the last of them does."""
        session = self.sessions[session_id]
        if session.accepting_jobs:
            session.accepting_jobs, session.stopped_at = False, self.clock()
        self.advance_sessions()

    def add_session(
        self,
        session_id: str,
        crn: str,
        *,
        backend: str = "ibm_emulated",
        mode: str = "dedicated",
        max_ttl: int = 28800,
        active_ttl: int | None = None,
        interactive_ttl: int | None = 60,
        started_at: datetime | None = None,
    ) -> IBMSessionState:
        state = IBMSessionState(
            session_id, crn, backend, mode, max_ttl, active_ttl, interactive_ttl, started_at
        )
        self.sessions[session_id] = state
        return state
