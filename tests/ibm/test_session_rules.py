"""The session formulas of docs/ibm.md, each at its boundary (exactly fits / one second over),
straight on the rules and a ledger; the end-to-end versions are in tests/guard/test_ibm_sessions.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from quotaguard.engine import Budget, Charge, Unit
from quotaguard.ibm import GetUsageResponse, IBMJob, IBMPolicy, IBMSession
from quotaguard.ibm.models import ExpandedAccountConfiguration, ExpandedPlanConfiguration
from quotaguard.ibm.rules import (
    RULE_TTL_ORDER,
    budget_key,
    estimate,
    job_ceiling,
    session_raise,
)
from quotaguard.ibm.sansio import account_from_crn
from quotaguard.ledger import MemoryLedger
from tests._support.ibm import CRN

KEY = budget_key(CRN)
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
POLICY = IBMPolicy()
PREMIUM = GetUsageResponse(CRN, "premium", Decimal(0), usage_limit_seconds=Decimal(10**6))


def job_charge(ceiling: int, covered: int, mode: str = "dedicated") -> Decimal:
    job = IBMJob("ibm_torino", ceiling, session_id="s1")
    est = estimate(
        job, usage=PREMIUM, policy=POLICY, budget_key=KEY, session_remaining=Decimal(10**6),
        session_held=True, session_mode=mode, session_covered=Decimal(covered),
    )  # fmt: skip
    (charge,) = est.charges
    return charge.amount


@pytest.mark.parametrize(
    ("ceiling", "covered", "extra"),
    [(100, 0, 100), (100, 100, 0), (101, 100, 1), (50, 300, 0), (300, 200, 100)],
)
def test_a_job_raises_a_dedicated_session_to_its_largest_ceiling(
    ceiling: int, covered: int, extra: int
) -> None:
    assert session_raise(Decimal(ceiling), Decimal(covered)) == extra
    assert job_charge(ceiling, covered) == extra


def test_a_job_in_a_batch_holds_its_whole_ceiling_whatever_was_admitted() -> None:
    assert job_charge(300, covered=300, mode="batch") == 300


def test_the_job_ceiling_is_the_smaller_of_max_execution_time_and_the_cap() -> None:
    assert job_ceiling(IBMJob("b", 10_800), POLICY) == 10_800
    assert job_ceiling(IBMJob("b", 10_801), POLICY) == 10_800
    assert job_ceiling(IBMJob("b"), POLICY) == 10_800


async def _reserve_all(limit: int, amounts: list[Decimal]) -> list[bool]:
    async with MemoryLedger() as ledger:
        await ledger.put_budget(Budget(KEY, Unit.SECONDS, Decimal(limit)))
        out = []
        for amount in amounts:
            decision = await ledger.reserve([Charge(KEY, amount, Unit.SECONDS)], now=NOW)
            out.append(decision.admitted)
        return out


def _dedicated_holds(max_time: int, ceilings: list[int]) -> list[Decimal]:
    """What a session and the jobs admitted into it reserve, in order."""
    session = estimate(
        IBMSession("ibm_torino", max_time), usage=PREMIUM, policy=POLICY, budget_key=KEY
    )
    holds, covered = [session.charges[0].amount], Decimal(0)
    for c in ceilings:
        holds.append(job_charge(c, int(covered)))
        covered = max(covered, Decimal(c))
    return holds


@pytest.mark.parametrize(("limit", "admitted"), [(1300, True), (1299, False)])
async def test_dedicated_max_time_plus_largest_ceiling_at_the_boundary(
    limit: int, admitted: bool
) -> None:
    holds = _dedicated_holds(1000, [200, 300, 300, 50])
    assert holds == [1000, 200, 100, 0, 0]
    assert await _reserve_all(limit, holds[:3]) == [True, True, admitted]


@pytest.mark.parametrize(("limit", "admitted"), [(900, True), (899, False)])
async def test_batch_sum_of_ceilings_at_the_boundary(limit: int, admitted: bool) -> None:
    batch = estimate(
        IBMSession("ibm_torino", 600, mode="batch"), usage=PREMIUM, policy=POLICY, budget_key=KEY
    )
    holds = [batch.charges[0].amount] + [job_charge(300, 300, "batch") for _ in range(3)]
    assert holds == [0, 300, 300, 300]
    assert await _reserve_all(limit, holds) == [True, True, True, admitted]


@pytest.mark.parametrize(("max_time", "rules"), [(3600, []), (3601, [RULE_TTL_ORDER])])
def test_the_plan_max_ttl_from_the_account_at_the_boundary(max_time: int, rules: list[str]) -> None:
    est = estimate(
        IBMSession("ibm_torino", max_time), usage=PREMIUM, policy=POLICY, budget_key=KEY,
        plan_max_ttl=3600,
    )  # fmt: skip
    assert [v.rule for v in est.violations] == rules
    default = estimate(
        IBMSession("ibm_torino"), usage=PREMIUM, policy=POLICY, budget_key=KEY, plan_max_ttl=3600
    )
    assert default.charges[0].amount == 3600  # max_time unset: the plan's maximum


def test_the_account_reply_gives_the_max_ttl_of_the_instances_plan() -> None:
    def plan(plan_id: str, max_ttl: int | None) -> ExpandedPlanConfiguration:
        return ExpandedPlanConfiguration(plan_id, "s", "S", (), max_ttl=max_ttl)

    account = ExpandedAccountConfiguration((plan("open", 600), plan("premium", 3600)))
    assert (account.plan("premium") or pytest.fail("no premium")).max_ttl == 3600
    assert account.plan("flex") is None


@pytest.mark.parametrize(
    ("crn", "account"),
    [
        (CRN, "acct-1"),
        ("crn:v1:bluemix:public:quantum-computing:us-east:a/demo::premium", "demo"),
        ("crn:v1:bluemix:public:quantum-computing:us-east::inst-1::", None),
        ("crn:v1:bluemix:public:quantum-computing:us-east:a/bad id:i::", None),
    ],
)
def test_the_account_id_is_read_from_the_crn(crn: str, account: str | None) -> None:
    assert account_from_crn(crn) == account
