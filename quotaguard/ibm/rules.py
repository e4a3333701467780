"""IBM's rules: what a job or session draws on an instance, and what IBM would refuse.

Rule codes (stable; match on these, not on messages):

``ibm.max_execution_time.unset``
    The job sets no ``max_execution_time``, so the 3 h system cap (10,800 s) is reserved,
    and that does not fit what the instance has left. Set ``max_execution_time``.
    (Produced here from the provider-reported usage, and by :func:`explain_rejection` from the
    ledger's ``budget.remaining`` when local reservations are what make it not fit.)
``ibm.max_execution_time.invalid``
    ``max_execution_time`` is not whole seconds in 1..2³¹−1. :class:`IBMJob` refuses such
    values at construction; this code covers job-like objects built another way.
``ibm.instance.limit_reached``
    The usage endpoint says ``usage_limit_reached: true``: IBM runs nothing more this period.
``ibm.plan.unknown``
    IBM reports no limit (nor allocation) and the plan cannot be told from the service (see
    :mod:`quotaguard.ibm.plans`): refused rather than treated as unlimited. Declare the plan
    (``IBMPolicy(plan=...)``, ``[ibm] plan`` in quotaguard.toml).
``ibm.instance.unreadable``
    The job names another instance (``IBMJob(instance=...)``) whose usage this client's API
    key cannot read (IBM answers 403/404): its limit cannot be checked, so the job is refused.
``ibm.open_plan.no_sessions``
    Open-plan instances run jobs and batches only; a dedicated session is refused.
``ibm.session.ttl_order``
    Session times must satisfy interactive_ttl ≤ active_ttl ≤ max_time ≤ the plan's max_ttl.
``ibm.session.remaining``
    A job sent into a session must fit the session's remaining wall-clock time: jobs still
    queued when the session ends are failed.
``ibm.payload.program_too_large`` / ``ibm.payload.input_too_large``
    Programs are limited to 750 KB and job inputs to 64 MB (configurable in :class:`IBMPolicy`).

Charges (the worst case IBM can bill; docs/ibm.md, "Session formulas"): a job reserves its
ceiling, min(max_execution_time, cap) seconds of its instance. A dedicated session reserves
its ``max_time``; a job admitted into one the guard holds reserves only what raises the
session's hold to ``max_time`` + the largest ceiling admitted into it (a job still running
when ``max_time`` ends goes on, and the session bills wall-clock until it ends). A batch
reserves nothing itself and each of its jobs its own ceiling (a batch bills its jobs' QPU
time, and they may run in parallel). Simulator jobs charge nothing to QPU budgets.

The policy and the instance's budget are in :mod:`quotaguard.ibm.policy`, the session rules in
:mod:`quotaguard.ibm.sessions`; this module re-exports both and holds the one :func:`estimate`.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from quotaguard.engine import RULE_REMAINING, Charge, Estimate, Violation
from quotaguard.engine.registry import Source, register
from quotaguard.ibm.models import GetUsageResponse
from quotaguard.ibm.plans import RULE_PLAN_UNKNOWN, InstanceLimit

# The policy and the session rules are re-exported: this stays the one import of IBM's rules.
from quotaguard.ibm.policy import (
    RULE_LIMIT_REACHED,
    IBMPolicy,
    S,
    budget_key,
    instance_budget,
    reported_used,
    seconds_violation,
)
from quotaguard.ibm.seeds import INSTANCES_API, MAX_EXECUTION_TIME
from quotaguard.ibm.sessions import (
    RULE_OPEN_NO_SESSIONS,
    RULE_SESSION_REMAINING,
    RULE_TTL_ORDER,
    job_in_session,
    session_estimate,
    session_raise,
)
from quotaguard.ibm.work import MAX_EXECUTION_TIME_MAX, IBMJob, IBMSession

__all__ = [
    "RULE_INPUT_TOO_LARGE",
    "RULE_INSTANCE_UNREADABLE",
    "RULE_INVALID",
    "RULE_LIMIT_REACHED",
    "RULE_OPEN_NO_SESSIONS",
    "RULE_PLAN_UNKNOWN",
    "RULE_PROGRAM_TOO_LARGE",
    "RULE_SESSION_REMAINING",
    "RULE_TTL_ORDER",
    "RULE_UNSET",
    "IBMPolicy",
    "budget_key",
    "estimate",
    "explain_rejection",
    "instance_budget",
    "job_ceiling",
    "reported_used",
    "session_raise",
    "unreadable",
]


RULE_UNSET = register(
    "ibm.max_execution_time.unset",
    "A job without max_execution_time reserves IBM's full system cap, and that does not fit "
    "(reported instead of budget.remaining, since the fix is to set it).",
    source=Source.SEED,
    reference=f"{MAX_EXECUTION_TIME}: the system timeout is capped at 3 hours",
    action="Set max_execution_time on the job (the message says the most that fits).",
    numbers="cap 10,800 s (IBMPolicy.job_cap_seconds)",
)
RULE_INVALID = register(
    "ibm.max_execution_time.invalid",
    "max_execution_time is not whole seconds in range.",
    source=Source.LIVE,
    reference="IBM runtime API: max_execution_time is a positive int32",
    action="Pass whole seconds between 1 and 2**31-1.",
    numbers="1 .. 2,147,483,647 s",
)
RULE_INSTANCE_UNREADABLE = register(
    "ibm.instance.unreadable",
    "The work names another instance (IBMJob(instance=...)) whose usage this API key cannot "
    "read (403/404), so its limit cannot be checked; refused whatever the fail mode.",
    source=Source.LIVE,
    reference=f"{INSTANCES_API}: GET /v1/instances/usage with that instance's Service-CRN",
    action="Use an API key with access to that instance, or send the work to the client's own.",
)
RULE_PROGRAM_TOO_LARGE = register(
    "ibm.payload.program_too_large",
    "The program is larger than IBM accepts.",
    source=Source.SEED,
    reference=f"{MAX_EXECUTION_TIME}: programs cannot exceed 750KB",
    action="Make the program smaller (or set IBMPolicy.max_program_bytes if IBM's limit moved).",
    numbers="750,000 bytes (IBMPolicy.max_program_bytes)",
)
RULE_INPUT_TOO_LARGE = register(
    "ibm.payload.input_too_large",
    "The job's inputs are larger than IBM accepts.",
    source=Source.SEED,
    reference=f"{MAX_EXECUTION_TIME}: inputs cannot exceed 64MB (IBM pages now also cite 50 MB)",
    action="Split the job into smaller ones (or set IBMPolicy.max_input_bytes).",
    numbers="64,000,000 bytes (IBMPolicy.max_input_bytes)",
)


def _unset_message(key: str, cap: int, remaining: Decimal) -> str:
    return (
        f"no max_execution_time is set, so the full {cap} s system cap is reserved, but "
        f"{key!r} has {remaining} s left; set max_execution_time to at most "
        f"{max(int(remaining), 0)} seconds"
    )


def job_ceiling(work: IBMJob, policy: IBMPolicy) -> Decimal:
    """The most IBM lets the job run (and bill): min(max_execution_time, the system cap)."""
    met, cap = work.max_execution_time, policy.job_cap_seconds
    if isinstance(met, bool) or not isinstance(met, int) or not 1 <= met <= MAX_EXECUTION_TIME_MAX:
        return Decimal(cap)  # unset, or invalid (refused as ibm.max_execution_time.invalid)
    return Decimal(min(met, cap))


def _job(
    work: IBMJob,
    usage: GetUsageResponse | None,
    policy: IBMPolicy,
    key: str,
    session_remaining: Decimal | None,
    session_held: bool = True,
    session_mode: str | None = None,
    session_covered: Decimal = Decimal(0),
) -> Estimate:
    violations: list[Violation] = []
    met = work.max_execution_time
    if met is not None and (
        isinstance(met, bool) or not isinstance(met, int) or not 1 <= met <= MAX_EXECUTION_TIME_MAX
    ):
        violations.append(
            seconds_violation(
                RULE_INVALID,
                f"max_execution_time must be whole seconds in 1..{MAX_EXECUTION_TIME_MAX}, "
                f"got {met!r}",
                key,
            )
        )
    ceiling = job_ceiling(work, policy)
    if work.program_bytes > policy.max_program_bytes:
        violations.append(
            Violation(
                RULE_PROGRAM_TOO_LARGE,
                f"the program is {work.program_bytes} bytes; IBM accepts at most "
                f"{policy.max_program_bytes} bytes. Make the program smaller",
            )
        )
    if work.input_bytes > policy.max_input_bytes:
        violations.append(
            Violation(
                RULE_INPUT_TOO_LARGE,
                f"the job inputs are {work.input_bytes} bytes; IBM accepts at most "
                f"{policy.max_input_bytes} bytes. Split the job into smaller ones",
            )
        )
    if work.simulator:  # wall-clock on a simulator: no QPU budget is drawn
        return Estimate((), tuple(violations), Decimal(0), S, metered=False)
    if usage is not None and usage.usage_limit_reached:
        violations.append(
            seconds_violation(
                RULE_LIMIT_REACHED,
                f"instance {key!r} has reached its usage limit for this period; IBM runs no "
                "more work until it resets or the limit is raised",
                key,
                ceiling,
                0,
            )
        )
    if work.session_id is not None:
        found = job_in_session(
            work, key, ceiling, violations, remaining=session_remaining, held=session_held,
            mode=session_mode, covered=session_covered,
        )  # fmt: skip
        if found is not None:
            return found
    # No max_execution_time and the cap does not fit: the ledger refuses (budget.remaining,
    # with what is really left after local holds and commits) and explain_rejection turns
    # that into RULE_UNSET. Judged here from IBM's figure alone, the advice would be wrong.
    return Estimate((Charge(key, ceiling, S),), tuple(violations), ceiling, S)


def estimate(
    work: IBMJob | IBMSession,
    *,
    usage: GetUsageResponse | None,
    policy: IBMPolicy,
    budget_key: str,
    session_remaining: Decimal | None = None,
    session_held: bool = True,
    session_mode: str | None = None,
    session_covered: Decimal = Decimal(0),
    plan_max_ttl: int | None = None,
    limit: InstanceLimit | None = None,
) -> Estimate:
    """Charges and static violations for ``work``; the ledger adds ``budget.remaining``.

    ``session_held``: whether a reservation holds the job's session (opened through the
    guard); ``session_mode`` its mode, ``session_covered`` the largest ceiling of a job
    admitted into it so far. A job in a held dedicated session charges what it adds to the
    session's hold (:func:`session_raise`); a job in a batch or in a session nobody holds is
    charged in full. ``plan_max_ttl``: the plan's session maximum from the account endpoint
    (None: the policy's). ``limit``: the instance's resolved limit and plan; one that is
    unknown refuses the work.
    """
    if isinstance(work, IBMSession):
        plan_id = usage.plan_id if usage is not None else None
        plan = limit.plan if limit is not None else policy.plan_of(plan_id)
        found = session_estimate(work, usage, policy, budget_key, plan == "open", plan_max_ttl)
    else:
        found = _job(
            work, usage, policy, budget_key, session_remaining, session_held, session_mode,
            session_covered,
        )  # fmt: skip
        if work.simulator:
            return found
    if limit is not None and not limit.known:
        unknown = seconds_violation(
            RULE_PLAN_UNKNOWN, limit.unknown_message(budget_key), budget_key
        )
        found = attrs.evolve(found, violations=(*found.violations, unknown))
    return found


def unreadable(work: IBMJob | IBMSession, budget_key: str, crn: str, error: Exception) -> Estimate:
    """The refusal of work naming an instance this client may not read (403/404)."""
    message = (
        f"the work names instance {crn!r}, whose usage this client's API key cannot read "
        f"({error}); its limit cannot be checked. Use a key with access to that instance, or "
        "send the work to the client's own instance"
    )
    violation = seconds_violation(RULE_INSTANCE_UNREADABLE, message, budget_key)
    return Estimate((), (violation,), Decimal(0), S)


def explain_rejection(work: IBMJob | IBMSession, violation: Violation) -> Violation:
    """Rewrite the ledger's ``budget.remaining`` on an IBM budget into
    ``ibm.max_execution_time.unset`` when the job set no ``max_execution_time``: the fix is to
    set it, and the message says so. Any other violation is returned unchanged."""
    if (
        isinstance(work, IBMJob)
        and work.max_execution_time is None
        and not work.simulator
        and work.session_id is None
        and violation.rule == RULE_REMAINING
        and violation.budget is not None
        and violation.budget.startswith("ibm:")
        and violation.requested is not None
    ):
        remaining = violation.remaining if violation.remaining is not None else Decimal(0)
        return attrs.evolve(
            violation,
            rule=RULE_UNSET,
            message=_unset_message(violation.budget, int(violation.requested), remaining),
        )
    if (
        isinstance(work, IBMJob)
        and work.max_execution_time is not None
        and violation.rule == RULE_REMAINING
        and violation.budget is not None
        and violation.budget.startswith("ibm:")
        and violation.requested is not None
        and work.max_execution_time > violation.requested
    ):
        # Say why the job asks for less than the caller set: IBM caps every job.
        return attrs.evolve(
            violation,
            message=f"{violation.message} (max_execution_time {work.max_execution_time} s "
            f"is capped at the {int(violation.requested)} s system limit)",
        )
    return violation
