"""Telling the plan and the binding limit from IBM's answers (quotaguard.ibm.plans)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quotaguard.ibm import GetUsageResponse, IBMJob, IBMPolicy, IBMSession, Instance
from quotaguard.ibm.models import (
    CatalogEntry,
    CatalogMetadata,
    CatalogOverview,
    CatalogPricing,
    ExpandedAccountConfiguration,
    ExpandedPlanConfiguration,
    structure,
)
from quotaguard.ibm.plans import (
    PLAN_SETTING,
    plan_from_account,
    plan_from_catalog,
    plan_from_name,
    resolve_limit,
)
from quotaguard.ibm.rules import estimate

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-1:inst-1::"


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        ("flex-plan-id-1", "flex"),  # the spec's example
        ("open", "open"),
        ("lite", "open"),
        ("open-plan", "open"),
        ("Open Plan", "open"),
        ("Pay-As-You-Go Plan", "pay-as-you-go"),
        ("pay_as_you_go", "pay-as-you-go"),
        ("standard", "pay-as-you-go"),
        ("Premium", "premium"),
        ("7c4e1a52-90b3-4f0e-8a61-2d9e5b3c0f17", None),  # a catalog id naming nothing
        ("flex-or-premium", None),  # two plans: it does not tell
        ("opening", None),  # words, not substrings
        ("", None),
        (None, None),
    ],
)
def test_plan_from_name(text: str | None, plan: str | None) -> None:
    assert plan_from_name(text) == plan


def test_only_the_account_entry_for_that_plan_id_counts() -> None:
    def config(plan_id: str, name: str) -> ExpandedPlanConfiguration:
        return ExpandedPlanConfiguration(plan_id, "sub", name, ())

    account = ExpandedAccountConfiguration(
        (config("default-id", "Open Plan"), config("abc-123", "Flex Plan"))
    )
    assert plan_from_account(account.plan("abc-123")) == "flex"
    assert account.plan("zzz") is None
    assert plan_from_account(None) is None


def usage(limit: int | None = None, allocation: int | None = None) -> GetUsageResponse:
    return GetUsageResponse(
        instance_id=CRN,
        plan_id="p",
        usage_consumed_seconds=Decimal(0),
        usage_limit_seconds=None if limit is None else Decimal(limit),
        usage_allocation_seconds=None if allocation is None else Decimal(allocation),
    )


@pytest.mark.parametrize(
    ("reply", "instance", "plan", "seconds", "source"),
    [
        # qiskit-ibm-runtime 0.51 usage(): the limit, else the allocation.
        (usage(60, 120), None, None, 60, "usage_limit_seconds"),
        (usage(None, 120), None, None, 120, "usage_allocation_seconds"),
        (usage(), Instance(instance_limit_seconds=Decimal(61)), None, 61, "instance_limit_seconds"),
        (usage(), Instance(instance_limit=Decimal(7)), None, 7, "instance_limit_seconds"),
        (
            usage(),
            Instance(usage_allocation_seconds=Decimal(200)),
            None,
            200,
            "instance_allocation_seconds",
        ),
        (usage(), Instance(), "open", 600, "open_plan"),
        (usage(), Instance(), "premium", None, "none"),
        (usage(), Instance(), "flex", None, "none"),
        (usage(), Instance(), None, None, "unknown"),
        (usage(30), None, "open", 30, "usage_limit_seconds"),  # a figure beats the plan's
    ],
)
def test_resolve_limit_order(
    reply: GetUsageResponse,
    instance: Instance | None,
    plan: str | None,
    seconds: int | None,
    source: str,
) -> None:
    found = resolve_limit(reply, instance, plan, "policy", open_plan_seconds=600)  # type: ignore[arg-type]
    assert found.seconds == (None if seconds is None else Decimal(seconds))
    assert found.source == source
    assert found.known is (source != "unknown")


def test_the_unknown_message_names_the_settings() -> None:
    found = resolve_limit(usage(), Instance(), None, None, open_plan_seconds=600)
    message = found.unknown_message("ibm:x")
    assert PLAN_SETTING in message
    assert "'p'" in message


def test_an_unknown_plan_refuses_qpu_work_but_not_simulator_jobs() -> None:
    unknown = resolve_limit(usage(), Instance(), None, None, open_plan_seconds=600)
    policy, reply = IBMPolicy(), usage()
    for work in (IBMJob("b", 10), IBMSession("b", 60, mode="batch")):
        found = estimate(work, usage=reply, policy=policy, budget_key="ibm:x", limit=unknown)
        assert [v.rule for v in found.violations] == ["ibm.plan.unknown"]
    simulated = IBMJob("b", simulator=True)
    found = estimate(simulated, usage=reply, policy=policy, budget_key="ibm:x", limit=unknown)
    assert found.violations == ()


@pytest.mark.parametrize(
    ("entry", "plan"),
    [
        (CatalogEntry(overview_ui={"en": CatalogOverview("Flex")}), "flex"),
        (CatalogEntry(name="premium-plan"), "premium"),
        (CatalogEntry(metadata=CatalogMetadata(CatalogPricing("free"))), "open"),
        (CatalogEntry(metadata=CatalogMetadata(CatalogPricing("paygo"))), "pay-as-you-go"),
        (CatalogEntry(metadata=CatalogMetadata(CatalogPricing("subscription"))), None),
        (CatalogEntry(), None),
    ],
)
def test_plan_from_catalog(entry: CatalogEntry, plan: str | None) -> None:
    assert plan_from_catalog(entry) == plan


def test_a_catalog_entry_as_the_catalog_sends_it() -> None:
    data = {
        "id": "x",
        "name": "lite",
        "overview_ui": {"en": {"display_name": "Lite", "description": "..."}},
        "metadata": {"pricing": {"type": "Free", "origin": "global_catalog"}},
    }
    entry = structure(data, CatalogEntry)
    assert (entry.display_name, plan_from_catalog(entry)) == ("Lite", "open")
