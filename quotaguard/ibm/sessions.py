"""IBM's session rules: what a dedicated session or a batch draws, and what IBM would refuse.

A dedicated session reserves its ``max_time`` (interactive_ttl ≤ active_ttl ≤ max_time ≤ the
plan's max_ttl); a job admitted into one the guard holds adds only what raises that hold to
``max_time`` + the largest ceiling admitted into it (:func:`session_raise`). A batch reserves
nothing itself. Open-plan instances open no dedicated sessions. The rule codes are listed in
:mod:`quotaguard.ibm.rules`, which also holds the job rules and the one ``estimate``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from quotaguard.engine import Charge, Estimate, Violation
from quotaguard.engine.registry import Source, register
from quotaguard.ibm.policy import RULE_LIMIT_REACHED, S, seconds_violation
from quotaguard.ibm.seeds import INSTANCES_API, MAX_EXECUTION_TIME

if TYPE_CHECKING:
    from quotaguard.ibm.models import GetUsageResponse
    from quotaguard.ibm.policy import IBMPolicy
    from quotaguard.ibm.work import IBMJob, IBMSession

__all__ = [
    "RULE_OPEN_NO_SESSIONS",
    "RULE_SESSION_REMAINING",
    "RULE_TTL_ORDER",
    "job_in_session",
    "session_estimate",
    "session_raise",
]

RULE_OPEN_NO_SESSIONS = register(
    "ibm.open_plan.no_sessions",
    "Open-plan instances run jobs and batches only; a dedicated session is refused.",
    source=Source.LIVE,
    reference="IBM Quantum execution modes: the open plan has no session mode",
    action="Run the jobs directly or open the session with mode='batch'.",
    numbers="open plan: 600 s per period",
)
RULE_TTL_ORDER = register(
    "ibm.session.ttl_order",
    "Session times out of order: interactive_ttl <= active_ttl <= max_time <= the plan's max_ttl.",
    source=Source.SEED,
    reference=f"{INSTANCES_API}: SessionCreate max_ttl, active_ttl, interactive_ttl",
    action="Lower the larger time or raise the smaller one.",
    numbers="plan max_ttl 8 h (paid), 10 min (open batch); interactive 60 s",
)
RULE_SESSION_REMAINING = register(
    "ibm.session.remaining",
    "A job sent into a session may run longer than the session has left; queued jobs then fail.",
    source=Source.SEED,
    reference=f"{MAX_EXECUTION_TIME}: queued jobs are failed when the session times out",
    action="Lower the job's max_execution_time or open a new session.",
)


def session_raise(ceiling: Decimal, covered: Decimal) -> Decimal:
    """What a job adds to a dedicated session's hold, which covers ``max_time`` + ``covered``
    (the largest ceiling admitted so far): max(0, ceiling − covered)."""
    return max(ceiling - covered, Decimal(0))


def job_in_session(
    work: IBMJob,
    key: str,
    ceiling: Decimal,
    violations: list[Violation],
    *,
    remaining: Decimal | None,
    held: bool,
    mode: str | None,
    covered: Decimal,
) -> Estimate | None:
    """The session's part of a job's estimate: ``ibm.session.remaining`` is added to
    ``violations`` when the job may outlast its session; the estimate when the session's hold
    covers the job (it charges what it raises that hold by), else ``None`` (charged in full)."""
    if remaining is not None and ceiling > remaining:
        violations.append(
            seconds_violation(
                RULE_SESSION_REMAINING,
                f"session {work.session_id!r} has {remaining} s left but this job "
                f"may run {ceiling} s; queued jobs fail when the session ends. Lower "
                "max_execution_time or open a new session",
                key,
                ceiling,
                remaining,
            )
        )
    if held and mode != "batch":
        # The session's hold covers max_time + the largest ceiling admitted so far; this
        # job raises it by what its own ceiling adds. A batch bills its jobs' QPU time,
        # and a session nobody reserved covers nothing: such jobs are charged in full.
        extra = session_raise(ceiling, covered)
        return Estimate((Charge(key, extra, S),), tuple(violations), extra, S)
    return None


def session_estimate(
    work: IBMSession,
    usage: GetUsageResponse | None,
    policy: IBMPolicy,
    key: str,
    open_plan: bool,
    plan_max_ttl: int | None = None,
) -> Estimate:
    violations: list[Violation] = []
    if open_plan and work.mode == "dedicated":
        violations.append(
            seconds_violation(
                RULE_OPEN_NO_SESSIONS,
                "open-plan instances cannot open sessions; run jobs directly or use mode='batch'",
                key,
            )
        )
    plan_max = plan_max_ttl or policy.plan_max_ttl(open_plan)
    max_time = work.max_time if work.max_time is not None else plan_max
    interactive = work.interactive_ttl or min(policy.session_interactive_ttl_seconds, max_time)
    active = work.active_ttl if work.active_ttl is not None else max_time
    if not interactive <= active <= max_time <= plan_max:
        violations.append(
            seconds_violation(
                RULE_TTL_ORDER,
                f"session times must satisfy interactive_ttl ({interactive} s) <= active_ttl "
                f"({active} s) <= max_time ({max_time} s) <= the plan's max_ttl ({plan_max} s)",
                key,
                max_time,
            )
        )
    if usage is not None and usage.usage_limit_reached:
        violations.append(
            seconds_violation(
                RULE_LIMIT_REACHED,
                f"instance {key!r} has reached its usage limit for this period",
                key,
                max_time,
                0,
            )
        )
    # A batch bills only its jobs' QPU time, which each job holds for itself.
    amount = Decimal(0 if work.mode == "batch" else max_time)
    return Estimate((Charge(key, amount, S),), tuple(violations), amount, S)
