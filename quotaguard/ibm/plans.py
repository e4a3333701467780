"""Which plan an instance is on, and which limit binds it, from what IBM says (pure).

IBM's ``plan_id`` is a Global Catalog identifier (the spec's example is ``flex-plan-id-1``),
not a plan name, so the plan is told from, in order: the plan id when it names one; the
account's plan configuration (``GET /v1/accounts/{id}?plan_id=…``: its plan id and its
``subscription_name``); the plan's Global Catalog entry (``overview_ui.en.display_name`` and
``metadata.pricing.type``, as qiskit-ibm-runtime 0.51 ``Account.list_instances`` reads them)
where the client has a catalog URL; else what the user declared
(``IBMPolicy(plan=…)`` / ``[ibm] plan``). The service wins over the declaration: the
declaration fills a gap, it does not overrule what IBM reports.

The limit, in order (as qiskit-ibm-runtime 0.51 ``QiskitRuntimeService.usage`` reads it: the
allocation when the limit is missing): ``usage_limit_seconds``; ``usage_allocation_seconds``;
``/v1/instance``'s ``instance_limit_seconds`` then its ``usage_allocation_seconds``; the open
plan's allowance; none on a known paid plan. With no figure and no known plan the limit is
*unknown*: the guard fails closed (``ibm.plan.unknown``), never unlimited.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final, Literal, get_args

import attrs

from quotaguard.engine.registry import Source, register
from quotaguard.errors import InvalidInput
from quotaguard.ibm.models import CatalogEntry, GetUsageResponse, Instance, PlanConfiguration
from quotaguard.ibm.seeds import INSTANCES_API

__all__ = [
    "PLANS",
    "PLAN_SETTING",
    "RULE_PLAN_UNKNOWN",
    "InstanceLimit",
    "Plan",
    "check_plan",
    "plan_from_account",
    "plan_from_catalog",
    "plan_from_name",
    "resolve_limit",
]

Plan = Literal["open", "pay-as-you-go", "flex", "premium"]
PLANS: Final[tuple[Plan, ...]] = get_args(Plan)
RULE_PLAN_UNKNOWN: Final = register(
    "ibm.plan.unknown",
    "IBM reports no limit (nor allocation) and the plan cannot be told from the service "
    "(plan id, account plans, Global Catalog): refused rather than treated as unlimited.",
    source=(Source.LIVE, Source.SDK),
    reference=f"{INSTANCES_API}: plan_id is a catalog identifier "
    "(flex-plan-id-1); qiskit-ibm-runtime Account.list_instances reads the catalog",
    action='Declare the plan: IBMPolicy(plan=...) or [ibm] plan = "open" | "pay-as-you-go" | '
    '"flex" | "premium" in quotaguard.toml.',
)
#: Where a user declares the plan; every message that asks for it names both.
PLAN_SETTING: Final = (
    'IBMPolicy(plan=...) or, for the command, [ibm] plan = "open" | "pay-as-you-go" | '
    '"flex" | "premium" in quotaguard.toml'
)

# Words of plan ids and catalog names, and the plan each names. "lite" is the IBM Cloud
# catalog's name of the open plan; "standard" the former name of pay-as-you-go.
_WORDS: Final[dict[str, Plan]] = {
    "open": "open",
    "lite": "open",
    "payg": "pay-as-you-go",
    "paygo": "pay-as-you-go",
    "standard": "pay-as-you-go",
    "flex": "flex",
    "premium": "premium",
}
_PAY_AS_YOU_GO = re.compile(r"pay[\s_-]*as[\s_-]*you[\s_-]*go")
_SPLIT = re.compile(r"[^a-z0-9]+")


def check_plan(value: object, field: str = "plan") -> Plan | None:
    """A declared plan: one of :data:`PLANS`, or ``None`` (tell it from the service)."""
    if value is None:
        return None
    for plan in PLANS:
        if value == plan:
            return plan
    allowed = ", ".join(repr(p) for p in PLANS)
    raise InvalidInput(field, f"unknown plan {value!r}; expected one of {allowed} (or None)")


def plan_from_name(text: str | None) -> Plan | None:
    """The plan a plan id or catalog name names (``flex-plan-id-1`` → flex), if exactly one."""
    if not text:
        return None
    lowered = text.lower()
    found: set[Plan] = {"pay-as-you-go"} if _PAY_AS_YOU_GO.search(lowered) else set()
    found |= {_WORDS[w] for w in _SPLIT.split(_PAY_AS_YOU_GO.sub(" ", lowered)) if w in _WORDS}
    return found.pop() if len(found) == 1 else None


def plan_from_account(config: PlanConfiguration | None) -> Plan | None:
    """The plan a plan's account configuration (``ExpandedAccountConfiguration.plan``) names."""
    if config is None:
        return None
    return plan_from_name(config.plan_id) or plan_from_name(config.subscription_name)


#: Global Catalog pricing types that name one plan (qiskit-ibm-runtime 0.51 orders "free",
#: "trial", "paygo", "paid", "subscription"; the last three cover several plans).
_PRICING: Final[dict[str, Plan]] = {"free": "open", "paygo": "pay-as-you-go"}


def plan_from_catalog(entry: CatalogEntry) -> Plan | None:
    """The plan a catalog entry names: its display name, its name, else its pricing type."""
    pricing = entry.metadata.pricing if entry.metadata is not None else None
    kind = (pricing.type or "").lower() if pricing is not None else ""
    return plan_from_name(entry.display_name) or plan_from_name(entry.name) or _PRICING.get(kind)


@attrs.frozen
class InstanceLimit:
    """The limit that binds an instance, and where it came from: the one reading the guard
    charges against and ``quotaguard status`` prints."""

    #: Seconds per period; ``None``: no limit (see ``known``).
    seconds: Decimal | None
    #: ``usage_limit_seconds``, ``usage_allocation_seconds``, ``instance_limit_seconds``,
    #: ``instance_allocation_seconds``, ``open_plan``, ``none`` (a paid plan without a
    #: limit) or ``unknown`` (no figure, no known plan: fail closed).
    source: str
    plan_id: str
    plan: Plan | None = None
    #: ``plan_id``, ``account``, ``catalog`` or ``policy``: what told the plan.
    plan_source: str | None = None

    @property
    def known(self) -> bool:
        return self.source != "unknown"

    def unknown_message(self, key: str) -> str:
        return (
            f"{key!r} reports no usage limit and its plan cannot be told from plan id "
            f"{self.plan_id!r}, so the guard cannot know what IBM will allow; declare the "
            f"plan with {PLAN_SETTING}"
        )


def resolve_limit(
    usage: GetUsageResponse,
    instance: Instance | None,
    plan: Plan | None,
    plan_source: str | None,
    *,
    open_plan_seconds: int,
) -> InstanceLimit:
    """The binding limit from the usage reply, ``/v1/instance`` (when read) and the plan."""
    figures = [
        (usage.usage_limit_seconds, "usage_limit_seconds"),
        (usage.usage_allocation_seconds, "usage_allocation_seconds"),
    ]
    if instance is not None:
        figures += [
            (instance.limit_seconds, "instance_limit_seconds"),
            (instance.usage_allocation_seconds, "instance_allocation_seconds"),
        ]
    seconds, source = next(((s, w) for s, w in figures if s is not None), (None, "unknown"))
    if seconds is None and plan == "open":
        seconds, source = Decimal(open_plan_seconds), "open_plan"
    elif seconds is None and plan is not None:
        source = "none"
    return InstanceLimit(seconds, source, usage.plan_id, plan, plan_source)
