"""What the IBM rules use: the policy's figures, and an instance's budget from its usage reply.

The rules themselves (what work draws, what IBM would refuse) are in :mod:`quotaguard.ibm.rules`
and, for sessions, :mod:`quotaguard.ibm.sessions`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import attrs

from quotaguard.engine import (
    Budget,
    CalendarMonth,
    FixedWindow,
    RollingDays,
    Unit,
    Violation,
    Window,
)
from quotaguard.engine.amounts import MAX_AMOUNT
from quotaguard.engine.registry import Source, register
from quotaguard.errors import InvalidInput
from quotaguard.ibm.models import GetUsageResponse, Instance
from quotaguard.ibm.plans import InstanceLimit, Plan, check_plan, plan_from_name, resolve_limit
from quotaguard.ibm.seeds import INSTANCES_API

__all__ = [
    "RULE_LIMIT_REACHED",
    "IBMPolicy",
    "budget_key",
    "instance_budget",
    "reported_used",
    "seconds_violation",
]

S = Unit.SECONDS
RULE_LIMIT_REACHED = register(
    "ibm.instance.limit_reached",
    "The instance's usage endpoint says usage_limit_reached: IBM runs nothing more this period.",
    source=(Source.SEED, Source.LIVE),
    reference=f"{INSTANCES_API}: GET /v1/instances/usage usage_limit_reached",
    action="Wait for the period to reset or raise the instance's limit (quotaguard ibm-limit).",
)


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(attribute.name, f"expected a positive int, got {value!r}")


def _plan(_: object, attribute: attrs.Attribute[Plan | None], value: object) -> None:
    check_plan(value, attribute.name)


def _window_name(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("calendar_month", "rolling_28_days"):
        raise InvalidInput(attribute.name, "expected 'calendar_month' or 'rolling_28_days'")


@attrs.frozen
class IBMPolicy:
    """The figures the rules use; defaults are the seeds' (see DESIGN.md for the live ones)."""

    job_cap_seconds: int = attrs.field(default=10_800, validator=_positive)
    open_plan_seconds: int = attrs.field(default=600, validator=_positive)
    #: Used when the usage endpoint gives no ``usage_period``.
    open_plan_window: Literal["calendar_month", "rolling_28_days"] = attrs.field(
        default="calendar_month", validator=_window_name
    )
    max_program_bytes: int = attrs.field(default=750_000, validator=_positive)
    max_input_bytes: int = attrs.field(default=64_000_000, validator=_positive)
    #: The instance's plan when IBM's answers cannot tell it (see :mod:`quotaguard.ibm.plans`);
    #: what IBM says wins. Unknown and no limit reported: work is refused (ibm.plan.unknown).
    plan: Plan | None = attrs.field(default=None, validator=_plan)
    #: Session defaults by plan: paid plans 8 h max and 60 s interactive; open batches 10 min.
    session_max_ttl_seconds: int = attrs.field(default=28_800, validator=_positive)
    session_interactive_ttl_seconds: int = attrs.field(default=60, validator=_positive)
    open_batch_max_ttl_seconds: int = attrs.field(default=600, validator=_positive)
    #: How far IBM's reported usage may lag behind jobs that finished. A report is dated this
    #: much earlier than it was fetched, so spend committed locally in that time still counts
    #: on top of it (counted twice for a while rather than lost).
    usage_report_lag_seconds: int = attrs.field(default=900, validator=_positive)
    #: How long after a job ended its usage may stay pending (not final) before the guard
    #: commits the job's ceiling, with a warning, instead of holding on.
    usage_pending_max_seconds: int = attrs.field(default=86_400, validator=_positive)

    def plan_of(self, plan_id: str | None) -> Plan | None:
        """The plan a plan id names, else the declared one (no account lookup: see
        :class:`quotaguard.guard.ibm_instance.InstanceReader` for the whole detection)."""
        return plan_from_name(plan_id) or self.plan

    def window(self) -> Window:
        return RollingDays(28) if self.open_plan_window == "rolling_28_days" else CalendarMonth()

    def plan_max_ttl(self, open_plan: bool) -> int:
        return self.open_batch_max_ttl_seconds if open_plan else self.session_max_ttl_seconds


def budget_key(crn: str) -> str:
    return f"ibm:{crn}"


def _resolved(
    usage: GetUsageResponse, policy: IBMPolicy, instance_limit: Decimal | None
) -> InstanceLimit:
    plan = policy.plan_of(usage.plan_id)
    source = None if plan is None else ("plan_id" if plan_from_name(usage.plan_id) else "policy")
    instance = None if instance_limit is None else Instance(instance_limit_seconds=instance_limit)
    return resolve_limit(usage, instance, plan, source, open_plan_seconds=policy.open_plan_seconds)


def instance_budget(
    usage: GetUsageResponse,
    policy: IBMPolicy,
    now: datetime,
    *,
    crn: str | None = None,
    instance_limit: Decimal | None = None,
    limit: InstanceLimit | None = None,
) -> Budget:
    """The instance's budget in seconds. Limit: ``limit`` (see :func:`plans.resolve_limit`;
    computed here from the usage reply, ``instance_limit`` and the policy when not given);
    no limit on a known paid plan tracks without refusing; an unknown one holds nothing (0).
    Window: the server's ``usage_period`` while it contains ``now``, else the policy's (a
    period that has ended is stale)."""
    window: Window = policy.window()
    period = usage.usage_period
    start = period.start_time if period is not None else None
    end = period.end_time if period is not None else None
    if start is not None and end is not None and start <= now < end:
        window = FixedWindow(start, end)
    found = limit or _resolved(usage, policy, instance_limit)
    if found.seconds is not None:
        seconds = min(found.seconds, MAX_AMOUNT)
    else:  # no limit applies: the budget still tracks, never refuses; unknown: fail closed
        seconds = MAX_AMOUNT if found.known else Decimal(0)
    return Budget(budget_key(crn or usage.instance_id), S, max(seconds, Decimal(0)), window)


def reported_used(usage: GetUsageResponse) -> Decimal:
    """What IBM says the instance used this period: feed it to ``ledger.record_report``."""
    return usage.usage_consumed_seconds


def seconds_violation(
    rule: str,
    message: str,
    key: str | None,
    requested: Decimal | int | None = None,
    remaining: Decimal | int | None = None,
) -> Violation:
    """A violation on an instance budget, its amounts in seconds."""
    return Violation(
        rule,
        message,
        key,
        None if requested is None else Decimal(requested),
        None if remaining is None else Decimal(remaining),
        S,
    )
