"""Every IBM rule, table-driven, with the seeds' worked examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from quotaguard.engine import CalendarMonth, Charge, FixedWindow, RollingDays, Unit
from quotaguard.errors import InvalidInput
from quotaguard.ibm import GetUsageResponse, IBMJob, IBMPolicy, IBMSession, UsagePeriod
from quotaguard.ibm.rules import (
    RULE_INPUT_TOO_LARGE,
    RULE_INVALID,
    RULE_LIMIT_REACHED,
    RULE_OPEN_NO_SESSIONS,
    RULE_PROGRAM_TOO_LARGE,
    RULE_SESSION_REMAINING,
    RULE_TTL_ORDER,
    RULE_UNSET,
    budget_key,
    estimate,
    explain_rejection,
    instance_budget,
    reported_used,
)
from quotaguard.ledger import MemoryLedger

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-1:inst-1::"
KEY = budget_key(CRN)
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
POLICY = IBMPolicy()


def usage(
    plan: str = "premium",
    consumed: int | str = 0,
    limit: int | None = None,
    reached: bool | None = None,
) -> GetUsageResponse:
    return GetUsageResponse(
        instance_id=CRN,
        plan_id=plan,
        usage_consumed_seconds=Decimal(consumed),
        usage_limit_seconds=None if limit is None else Decimal(limit),
        usage_limit_reached=reached,
    )


PREMIUM = usage("premium", 0, 100_000, False)
OPEN = usage("open", 0, None, None)

# (id, work, usage, session_remaining, expected reserved seconds, expected rule codes)
CASES = [
    ("met 5000 reserves 5000", IBMJob("ibm_torino", 5000), PREMIUM, None, 5000, []),
    ("met 20000 reserves the 10800 cap", IBMJob("ibm_torino", 20000), PREMIUM, None, 10800, []),
    ("unset reserves the cap", IBMJob("ibm_torino"), PREMIUM, None, 10800, []),
    # Refused by the ledger, which knows local holds too (see the explain_rejection test).
    ("unset on open plan (600 s) reserves the cap", IBMJob("ibm_torino"), OPEN, None, 10800, []),
    ("met 300 on open plan fits", IBMJob("ibm_torino", 300), OPEN, None, 300, []),
    (
        "program 750 KB fits",
        IBMJob("ibm_torino", 60, program_bytes=750_000),
        PREMIUM,
        None,
        60,
        [],
    ),
    (
        "program 750 KB + 1 byte rejected",
        IBMJob("ibm_torino", 60, program_bytes=750_001),
        PREMIUM,
        None,
        60,
        [RULE_PROGRAM_TOO_LARGE],
    ),
    (
        "input 64 MB + 1 byte rejected",
        IBMJob("ibm_torino", 60, input_bytes=64_000_001),
        PREMIUM,
        None,
        60,
        [RULE_INPUT_TOO_LARGE],
    ),
    (
        "job into a session with 100 s left, met 300, rejected",
        IBMJob("ibm_torino", 300, session_id="s1"),
        PREMIUM,
        Decimal(100),
        300,
        [RULE_SESSION_REMAINING],
    ),
    (
        "job into a held session raises its hold by the job's ceiling",
        IBMJob("ibm_torino", 60, session_id="s1"),
        PREMIUM,
        Decimal(100),
        60,
        [],
    ),
    (
        "limit reached rejects everything",
        IBMJob("ibm_torino", 1),
        usage("premium", 600, 600, True),
        None,
        1,
        [RULE_LIMIT_REACHED],
    ),
    (
        "invalid met on a job-like object",
        SimpleNamespace(
            backend="b",
            max_execution_time=0,
            session_id=None,
            program_bytes=0,
            input_bytes=0,
            simulator=False,
        ),
        PREMIUM,
        None,
        10800,
        [RULE_INVALID],
    ),
    (
        "dedicated session on open plan rejected",
        IBMSession("ibm_torino", "5m"),
        OPEN,
        None,
        300,
        [RULE_OPEN_NO_SESSIONS],
    ),
    (
        "batch on open plan holds nothing itself (its jobs hold their ceilings)",
        IBMSession("ibm_torino", mode="batch"),
        OPEN,
        None,
        0,
        [],
    ),
    ("session 1h30m reserves 5400 s", IBMSession("ibm_torino", "1h30m"), PREMIUM, None, 5400, []),
    ("session default max_time is 8 h", IBMSession("ibm_torino"), PREMIUM, None, 28800, []),
    (
        "session interactive > active rejected",
        IBMSession("ibm_torino", 3600, interactive_ttl=600, active_ttl=300),
        PREMIUM,
        None,
        3600,
        [RULE_TTL_ORDER],
    ),
    (
        "session beyond plan max_ttl rejected",
        IBMSession("ibm_torino", "9h"),
        PREMIUM,
        None,
        32400,
        [RULE_TTL_ORDER],
    ),
]


@pytest.mark.parametrize(
    ("work", "state", "session_remaining", "reserved", "rules"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_rule_table(work, state, session_remaining, reserved, rules) -> None:  # type: ignore[no-untyped-def]
    est = estimate(
        work, usage=state, policy=POLICY, budget_key=KEY, session_remaining=session_remaining
    )
    assert [v.rule for v in est.violations] == rules
    assert est.charges == (Charge(KEY, Decimal(reserved), Unit.SECONDS),)
    assert est.unit is Unit.SECONDS
    assert est.metered is True
    for violation in est.violations:
        assert violation.message


async def test_unset_advice_counts_what_is_held_locally() -> None:
    """Open plan, IBM says 100 of 600 s used, and 400 s are held here: 100 s are really left,
    and that is the figure the advice gives (IBM's 500 would be refused again)."""
    state = usage("open", 100)
    budget = instance_budget(state, POLICY, NOW)
    async with MemoryLedger() as ledger:
        await ledger.put_budget(budget)
        await ledger.record_report(budget.key, reported_used(state), at=NOW)
        assert (await ledger.reserve([Charge(KEY, 400, Unit.SECONDS)], now=NOW)).admitted
        job = IBMJob("ibm_torino")
        est = estimate(job, usage=state, policy=POLICY, budget_key=KEY)
        decision = await ledger.reserve(est.charges, now=NOW)
    assert not decision.admitted
    (violation,) = (explain_rejection(job, v) for v in decision.violations)
    assert violation.rule == RULE_UNSET
    assert "set max_execution_time to at most 100 seconds" in violation.message
    assert (violation.requested, violation.remaining) == (Decimal(10800), Decimal(100))


def test_session_remaining_violation_amounts() -> None:
    job = IBMJob("ibm_torino", 300, session_id="s1")
    est = estimate(
        job, usage=PREMIUM, policy=POLICY, budget_key=KEY, session_remaining=Decimal(100)
    )
    (violation,) = est.violations
    assert (violation.requested, violation.remaining) == (Decimal(300), Decimal(100))
    assert "100" in violation.message


def test_simulator_charges_nothing() -> None:
    est = estimate(
        IBMJob("ibm_sim", simulator=True),
        usage=usage("open", 600, 600, True),
        policy=POLICY,
        budget_key=KEY,
    )
    assert est.charges == ()
    assert est.violations == ()
    assert est.metered is False
    assert est.amount == 0


def test_configurable_payload_limit() -> None:
    policy = IBMPolicy(max_input_bytes=50_000_000)
    est = estimate(
        IBMJob("b", 60, input_bytes=50_000_001), usage=None, policy=policy, budget_key=KEY
    )
    assert [v.rule for v in est.violations] == [RULE_INPUT_TOO_LARGE]


async def test_unset_rejected_by_the_ledger_is_explained() -> None:
    """Local reservations make the cap not fit: the ledger says budget.remaining and
    explain_rejection turns it into the actionable unset rule."""
    state = usage("premium", 0, 12_000, False)
    budget = instance_budget(state, POLICY, NOW)
    job = IBMJob("ibm_torino")
    async with MemoryLedger() as ledger:
        await ledger.put_budget(budget)
        await ledger.record_report(budget.key, reported_used(state), at=NOW)
        first = await ledger.reserve([Charge(KEY, 5000, Unit.SECONDS)], now=NOW)
        assert first.admitted
        est = estimate(job, usage=state, policy=POLICY, budget_key=KEY)
        assert est.violations == ()  # the provider alone would let it through
        decision = await ledger.reserve(est.charges, now=NOW)
    assert not decision.admitted
    (violation,) = (explain_rejection(job, v) for v in decision.violations)
    assert violation.rule == RULE_UNSET
    assert "set max_execution_time to at most 7000 seconds" in violation.message
    other = explain_rejection(IBMJob("ibm_torino", 9000), decision.violations[0])
    assert other == decision.violations[0]
    capped = explain_rejection(IBMJob("ibm_torino", 99999), decision.violations[0])
    assert capped.rule == decision.violations[0].rule
    assert capped.message.endswith(
        "(max_execution_time 99999 s is capped at the 10800 s system limit)"
    )


def test_instance_budget_limit_sources_and_windows() -> None:
    premium = instance_budget(usage("premium", 10, 3600), POLICY, NOW)
    assert (premium.key, premium.limit, premium.unit) == (KEY, Decimal(3600), Unit.SECONDS)
    assert premium.window == CalendarMonth()
    open_plan = instance_budget(usage("open", 10), POLICY, NOW)
    assert open_plan.limit == Decimal(600)
    rolling = instance_budget(usage("open"), IBMPolicy(open_plan_window="rolling_28_days"), NOW)
    assert rolling.window == RollingDays(28)
    from_instance = instance_budget(usage("premium"), POLICY, NOW, instance_limit=Decimal(77))
    assert from_instance.limit == Decimal(77)
    unlimited = instance_budget(usage("premium"), POLICY, NOW)
    assert unlimited.limit > Decimal(10**9)
    start, end = NOW - timedelta(days=3), NOW + timedelta(days=25)
    with_period = GetUsageResponse(
        CRN, "open", Decimal(5), UsagePeriod(start, end), Decimal(600), None, False
    )
    assert instance_budget(with_period, POLICY, NOW).window == FixedWindow(start, end)
    # A period that has ended is stale: fall back to the policy window.
    assert instance_budget(with_period, POLICY, end).window == CalendarMonth()
    assert reported_used(with_period) == Decimal(5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_execution_time": 0}, "max_execution_time"),
        ({"max_execution_time": 2**31}, "max_execution_time"),
        ({"max_execution_time": 1.5}, "max_execution_time"),
        ({"max_execution_time": True}, "max_execution_time"),
        ({"program_bytes": -1}, "program_bytes"),
        ({"input_bytes": "big"}, "input_bytes"),
        ({"session_id": ""}, "session_id"),
        ({"simulator": "yes"}, "simulator"),
        ({"backend": ""}, "backend"),
    ],
)
def test_ibm_job_bad_input(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"backend": "ibm_torino", **kwargs}
    with pytest.raises(InvalidInput) as info:
        IBMJob(**args)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1h30m", 5400), ("90m", 5400), ("45s", 45), ("2h", 7200), ("300", 300), (600, 600)],
)
def test_session_max_time_parsing(value: object, seconds: int) -> None:
    assert IBMSession("b", value).max_time == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_time": "1x"}, "max_time"),
        ({"max_time": ""}, "max_time"),
        ({"max_time": 0}, "max_time"),
        ({"mode": "shared"}, "mode"),
        ({"interactive_ttl": -5}, "interactive_ttl"),
        ({"active_ttl": "soon"}, "active_ttl"),
    ],
)
def test_ibm_session_bad_input(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        IBMSession("b", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_policy_validation() -> None:
    with pytest.raises(InvalidInput):
        IBMPolicy(open_plan_window="weekly")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        IBMPolicy(job_cap_seconds=0)
