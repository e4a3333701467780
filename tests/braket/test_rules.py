"""Braket rules and the work type: estimates, windows, budgets, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from quotaguard.braket import BraketTask, Price, PriceTable, SpendingLimit, TimePeriod
from quotaguard.braket.models import Device
from quotaguard.braket.rules import (
    RULE_DEVICE_UNAVAILABLE,
    RULE_MAX_DURATION_UNSET,
    RULE_PRICE_UNKNOWN,
    RULE_SHOTS_INVALID,
    RULE_WINDOW,
    allowed_run,
    budget_key,
    estimate,
    limit_budget,
    reported_used,
)
from quotaguard.engine import FixedWindow, NoWindow, Unit
from quotaguard.errors import InvalidInput
from tests._support.braket import FORTE, SV1

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
PRICES = PriceTable.default()


def limit(
    amount: str = "100", total: str = "10", queued: str = "5", period: TimePeriod | None = None
) -> SpendingLimit:
    return SpendingLimit(
        "arn:aws:braket:us-east-1:123456789012:spending-limit/x",
        FORTE,
        Decimal(amount),
        Decimal(total),
        Decimal(queued),
        period,
    )


def test_remaining_and_budget() -> None:
    lim = limit(period=TimePeriod(NOW - timedelta(days=1), NOW + timedelta(days=1)))
    assert lim.remaining == Decimal("85") and reported_used(lim) == Decimal("15")
    budget = limit_budget(lim)
    assert budget.key == budget_key(FORTE) == f"braket:{FORTE}"
    assert budget.unit is Unit.USD and budget.limit == Decimal("100")
    assert budget.window == FixedWindow(NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert limit_budget(limit()).window == NoWindow()


def test_qpu_task_charges_the_device_limit() -> None:
    est = estimate(BraketTask(FORTE, 100), prices=PRICES, limit=limit(), now=NOW)
    assert est.amount == Decimal("8.30") and est.metered and est.violations == ()
    (charge,) = est.charges
    assert (charge.budget, charge.amount, charge.unit) == (
        f"braket:{FORTE}",
        Decimal("8.30"),
        Unit.USD,
    )


def test_default_shots_are_the_sdks() -> None:
    assert BraketTask(FORTE).effective_shots == 1000
    assert BraketTask(SV1).effective_shots == 0
    assert estimate(BraketTask(FORTE), prices=PRICES, limit=None, now=NOW).amount == Decimal(
        "80.30"
    )


def test_no_limit_means_no_charge_but_an_amount_for_user_budgets() -> None:
    est = estimate(BraketTask(FORTE, 10), prices=PRICES, limit=None, now=NOW)
    assert est.charges == () and est.amount == Decimal("1.10")


def test_simulators_never_draw_on_spending_limits() -> None:
    sim_limit = limit()
    est = estimate(
        BraketTask(SV1, 0, max_duration=timedelta(minutes=1)),
        prices=PRICES,
        limit=sim_limit,
        now=NOW,
    )
    assert est.charges == () and not est.metered and est.amount == Decimal("0.075")


@pytest.mark.parametrize("offset", [timedelta(days=-40), timedelta(days=40)])
def test_outside_the_limit_window_is_rejected(offset: timedelta) -> None:
    period = TimePeriod(NOW + offset - timedelta(days=1), NOW + offset + timedelta(days=1))
    est = estimate(BraketTask(FORTE, 1), prices=PRICES, limit=limit(period=period), now=NOW)
    assert [v.rule for v in est.violations] == [RULE_WINDOW]


def test_window_end_is_exclusive() -> None:
    period = TimePeriod(NOW - timedelta(days=1), NOW)
    est = estimate(BraketTask(FORTE, 1), prices=PRICES, limit=limit(period=period), now=NOW)
    assert [v.rule for v in est.violations] == [RULE_WINDOW]


def test_unknown_price_is_a_violation_and_an_override_fixes_it() -> None:
    nova = "arn:aws:braket:us-east-1::device/qpu/acme/Nova"
    est = estimate(BraketTask(nova, 10), prices=PRICES, limit=None, now=NOW)
    assert [v.rule for v in est.violations] == [RULE_PRICE_UNKNOWN] and est.charges == ()
    task = BraketTask(nova, 10, price_override=Price(per_task=Decimal("1"), per_shot=Decimal("1")))
    assert estimate(task, prices=PRICES, limit=None, now=NOW).amount == Decimal("11")


def test_shots_outside_the_device_range() -> None:
    device = Device(
        FORTE, "Forte-1", "IonQ", "QPU", "ONLINE", '{"service": {"shotsRange": [1, 5000]}}'
    )
    est = estimate(BraketTask(FORTE, 6000), prices=PRICES, limit=None, device=device, now=NOW)
    assert [v.rule for v in est.violations] == [RULE_SHOTS_INVALID]


@pytest.mark.parametrize("status", ["OFFLINE", "RETIRED"])
def test_a_device_that_is_not_online(status: str) -> None:
    device = Device(FORTE, "Forte-1", "IonQ", "QPU", status)
    est = estimate(BraketTask(FORTE, 100), prices=PRICES, limit=None, device=device, now=NOW)
    (violation,) = est.violations
    assert (violation.rule, violation.budget) == (RULE_DEVICE_UNAVAILABLE, budget_key(FORTE))
    assert status in violation.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"device_arn": "", "shots": 1}, "device_arn"),
        ({"device_arn": "arn:aws:braket:us-east-1::device/gpu/x/y", "shots": 1}, "device_arn"),
        ({"device_arn": FORTE, "shots": 0}, "shots"),
        ({"device_arn": FORTE, "shots": -1}, "shots"),
        ({"device_arn": FORTE, "shots": 2**63}, "shots"),
        ({"device_arn": SV1, "shots": -1}, "shots"),
        ({"device_arn": FORTE, "shots": 1.0}, "shots"),
        ({"device_arn": FORTE, "shots": 1, "price_override": "cheap"}, "price_override"),
        ({"device_arn": SV1, "max_duration": timedelta(seconds=-1)}, "max_duration"),
    ],
)
def test_bad_tasks(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        BraketTask(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidInput):
        estimate(BraketTask(FORTE, 1), prices=PRICES, limit=None, now=datetime(2026, 1, 1))


def test_an_undeclared_simulator_run_is_a_violation_only_where_it_is_charged() -> None:
    est = estimate(BraketTask(SV1, 0), prices=PRICES, limit=None, now=NOW)
    assert est.violations == ()
    assert [v.rule for v in est.if_charged] == [RULE_MAX_DURATION_UNSET]
    declared = estimate(
        BraketTask(SV1, 0, max_duration=timedelta(seconds=1)), prices=PRICES, limit=None, now=NOW
    )
    assert declared.if_charged == () and declared.amount == Decimal("0.00375")  # 3 s minimum
    qpu = estimate(BraketTask(FORTE, 10), prices=PRICES, limit=limit(), now=NOW)
    assert qpu.if_charged == ()


def test_a_reservation_task_is_charged_nothing_even_outside_the_window() -> None:
    period = TimePeriod(NOW + timedelta(days=1), NOW + timedelta(days=2))
    reservation = "arn:aws:braket:us-east-1:123456789012:reservation/r-1"
    est = estimate(
        BraketTask(FORTE, 1000, reservation_arn=reservation),
        prices=PRICES,
        limit=limit(period=period),
        now=NOW,
    )
    assert (est.charges, est.violations, est.amount) == ((), (), 0)


@pytest.mark.parametrize(
    ("held", "shots", "price", "allowed"),
    [
        ("0.75", 0, Price(per_minute=Decimal("0.075")), timedelta(minutes=10)),
        ("0.750001", 0, Price(per_minute=Decimal("0.075")), timedelta(minutes=10)),  # < 1 ms
        (
            "0.45",
            100,
            Price(per_shot=Decimal("0.001"), per_minute=Decimal("0.35")),
            timedelta(minutes=1),
        ),
        ("0", 0, Price(per_task=Decimal("0.30"), per_minute=Decimal("1")), timedelta(0)),
        ("5", 10, Price(per_task=Decimal("0.30")), timedelta(0)),  # not billed by time
    ],
)
def test_allowed_run_is_the_longest_run_the_hold_pays_for(
    held: str, shots: int, price: Price, allowed: timedelta
) -> None:
    assert allowed_run(price, shots, Decimal(held)) == allowed
