"""Payloads about the account rather than the instance: the plan configurations of
``GET /v1/accounts/{id}`` (the plan, its session ``max_ttl``) and IBM Cloud Global Catalog
entries (a plan's name). :mod:`quotaguard.ibm.models` re-exports them and structures them.
"""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = [
    "CatalogEntry",
    "CatalogMetadata",
    "CatalogOverview",
    "CatalogPricing",
    "ExpandedAccountConfiguration",
    "ExpandedPlanConfiguration",
    "FunctionConfig",
    "PlanConfiguration",
]


@attrs.frozen
class FunctionConfig:
    provider: str
    name: str
    business_model: str
    permissions: tuple[str, ...]


@attrs.frozen
class PlanConfiguration:
    plan_id: str
    subscription_id: str
    subscription_name: str
    backends: tuple[str, ...]
    usage_allocation_seconds: int | None = None
    usage_limit_seconds: int | None = None
    max_ttl: int | None = None
    active_ttl: int | None = None
    interactive_ttl: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    functions: tuple[FunctionConfig, ...] = ()


@attrs.frozen
class ExpandedPlanConfiguration(PlanConfiguration):
    unallocated_usage_seconds: int | None = None


@attrs.frozen
class ExpandedAccountConfiguration:
    plans: tuple[ExpandedPlanConfiguration, ...]

    def plan(self, plan_id: str) -> ExpandedPlanConfiguration | None:
        """The configuration of ``plan_id``: only an entry for that very plan id counts (the
        endpoint answers a default configuration for unknown accounts)."""
        return next((plan for plan in self.plans if plan.plan_id == plan_id), None)


@attrs.frozen
class CatalogOverview:
    display_name: str | None = None


@attrs.frozen
class CatalogPricing:
    type: str | None = None


@attrs.frozen
class CatalogMetadata:
    pricing: CatalogPricing | None = None


@attrs.frozen
class CatalogEntry:
    """A Global Catalog entry (``GET {catalog}/{id}``), as qiskit-ibm-runtime 0.51 reads a plan's
    (``accounts/account.py`` ``list_instances``: ``overview_ui.en.display_name``, the plan's
    name, and ``metadata.pricing.type``)."""

    id: str | None = None
    name: str | None = None
    overview_ui: dict[str, CatalogOverview] = attrs.Factory(dict)
    metadata: CatalogMetadata | None = None

    @property
    def display_name(self) -> str | None:
        english = self.overview_ui.get("en")
        return english.display_name if english is not None else None
