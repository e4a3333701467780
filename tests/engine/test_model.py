"""The engine's value types and the pure remaining-budget rule, without a ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import attrs
import pytest

import quotaguard.ledger
from quotaguard.engine import (
    RULE_REMAINING,
    Budget,
    BudgetState,
    Charge,
    Decision,
    Estimate,
    Reservation,
    ReservationState,
    Unit,
    Usage,
    Violation,
    check_charges,
    evaluate,
    state_of,
    used_micro,
)
from quotaguard.engine.model import check_key, check_now, sum_by_budget
from quotaguard.errors import InvalidInput, UnknownBudget

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)


def usd(budget: str, amount: str) -> Charge:
    return Charge(budget, Decimal(amount), Unit.USD)


@pytest.mark.parametrize("key", [None, 7, "", "has space", "é", "x" * 513])
def test_bad_budget_keys_are_refused(key: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_key(key, "charges[0].budget")
    assert info.value.field == "charges[0].budget"


def test_good_budget_keys() -> None:
    arn = "braket:arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
    assert Budget(arn, "USD", Decimal(5)).key == arn  # type: ignore[arg-type]
    assert check_key("x" * 512) == "x" * 512


def test_values_are_frozen() -> None:
    charge = usd("a", "1")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        charge.amount = Decimal(2)  # type: ignore[misc]


def test_reservation_helpers() -> None:
    r = Reservation("rsv_1", (usd("a", "1.5"), usd("b", "2"), usd("a", "1")), NOW, NOW)
    assert r.amount_for("a") == Decimal("2.5")
    assert r.amount_for("zzz") == 0
    assert not r.ended
    assert attrs.evolve(r, state=ReservationState.EXPIRED).ended
    assert sum_by_budget(r.charges) == {"a": Decimal("2.5"), "b": Decimal(2)}
    assert list(sum_by_budget(r.charges)) == ["a", "b"]


def test_decision_helpers() -> None:
    v = Violation(RULE_REMAINING, "no", budget="a")
    rejected = Decision.reject([v], [usd("a", "1")])
    assert (rejected.admitted, rejected.rules, rejected.charges) == (
        False,
        (RULE_REMAINING,),
        (usd("a", "1"),),
    )
    assert Estimate().charges == () and Estimate().metered


def test_state_of_reports_the_budget_and_clamps_remaining() -> None:
    budget = Budget("a", Unit.SECONDS, Decimal(10))
    state = state_of(budget, Usage(committed=12_000_000, reserved=1, outstanding=1), NOW)
    assert isinstance(state, BudgetState)
    assert (state.key, state.limit, state.unit) == ("a", 10, Unit.SECONDS)
    assert (state.used, state.remaining) == (Decimal("12.000001"), 0)


def test_used_is_the_larger_of_local_and_reported() -> None:
    assert used_micro(Usage(committed=5, reserved=2)) == 7
    assert used_micro(Usage(committed=5, reserved=2, reported=10, since_report=1)) == 13
    assert used_micro(Usage(committed=50, reserved=2, reported=10, since_report=1)) == 52


def test_holds_inside_a_covering_report_count_once_and_never_below_it() -> None:
    # One 8.30 task queued at Braket, held here and inside Braket's report of 8.30.
    held = Usage(reserved=8_300_000, reported=8_300_000, inside=8_300_000, covers_sent=True)
    assert used_micro(held) == 8_300_000
    # Released at 0 (it failed): Braket's figure still holds it until its next report.
    assert used_micro(Usage(reported=8_300_000, covers_sent=True)) == 8_300_000
    state = state_of(Budget("a", Unit.USD, Decimal(50)), held, NOW)
    assert (state.inside_report, state.covers_sent, state.remaining) == (
        Decimal("8.3"),
        True,
        Decimal("41.7"),
    )


def test_check_charges_sums_per_budget_rounding_each_charge_up() -> None:
    budgets = {"a": Budget("a", Unit.USD, Decimal(10))}
    totals = check_charges([usd("a", "0.0000001"), usd("a", "1")], budgets)
    assert totals == {"a": 1_000_001}
    with pytest.raises(UnknownBudget) as info:
        check_charges([usd("b", "1")], budgets, field="work")
    assert (info.value.field, info.value.key) == ("work[0].budget", "b")
    assert "put_budget" in str(info.value)


def test_evaluate_names_every_budget_that_does_not_fit() -> None:
    budgets = {
        "a": Budget("a", Unit.USD, Decimal(10)),
        "b": Budget("b", Unit.USD, Decimal(10)),
    }
    usage = {"a": Usage(committed=9_000_000), "b": Usage(reserved=12_000_000)}
    violations = evaluate({"a": 2_000_000, "b": 1}, budgets, usage, NOW)
    assert [(v.budget, v.requested, v.remaining) for v in violations] == [
        ("a", 2, 1),
        ("b", Decimal("0.000001"), 0),  # overdrawn: remaining is never negative
    ]
    assert evaluate({"a": 1_000_000}, budgets, usage, NOW) == []


def test_now_must_be_aware() -> None:
    assert check_now(NOW + timedelta(0)) == NOW
    with pytest.raises(InvalidInput) as info:
        check_now(datetime(2026, 1, 1))
    assert info.value.field == "now"


def test_redis_ledger_is_imported_lazily() -> None:
    from quotaguard.ledger.redis import RedisLedger

    assert quotaguard.ledger.RedisLedger is RedisLedger
    with pytest.raises(AttributeError, match="NoSuchLedger"):
        _ = quotaguard.ledger.NoSuchLedger  # type: ignore[attr-defined]


def test_a_reservation_is_in_doubt_while_marked_and_not_settled() -> None:
    t0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    plain = Reservation("rsv_1", (Charge("a", Decimal(1), Unit.USD),), t0, t0)
    assert (plain.in_doubt, plain.in_doubt_since, plain.sent_at) == (False, None, None)
    marked = attrs.evolve(plain, in_doubt_since=t0)
    expected = {
        ReservationState.HELD: True,
        ReservationState.EXPIRED: True,  # its lease lapsed; its cost is still unknown
        ReservationState.COMMITTED: False,
        ReservationState.RELEASED: False,
    }
    assert {s: attrs.evolve(marked, state=s).in_doubt for s in ReservationState} == expected
    assert BudgetState.__attrs_attrs__.in_doubt.default == 0  # type: ignore[attr-defined]
