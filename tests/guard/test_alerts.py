"""Soft thresholds through the guard: provider budgets take the guard's alert levels, user
budgets their own; each crossing is one ``alert_crossed`` event, on one guard of a fleet."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from quotaguard import Budget, MemoryLedger, Unit
from quotaguard.braket.client import BraketClient
from quotaguard.braket.work import BraketTask
from quotaguard.errors import InvalidInput
from quotaguard.guard import BudgetGuard
from quotaguard.guard.events import AlertCrossed, Event
from quotaguard.testing import FakeClock
from quotaguard.testing.seed import DemoSeed
from tests._support.braket import ACTION

TEAM = "team:q"


async def _submit(guard: BudgetGuard, client: BraketClient, seed: DemoSeed, n: int) -> object:
    task = BraketTask(seed.device_arn, shots=10)  # $0.30 + 10 x $0.08 = $1.10

    async def send() -> object:
        return await client.create_quantum_task(
            task.device_arn, ACTION, task.effective_shots, "amazon-braket-test", f"t/{n}"
        )

    return await guard.submit(task, send, budgets=[TEAM])


async def test_each_crossing_is_one_event_and_reaches_the_caller_on_one_guard_of_a_fleet(
    braket: tuple[BraketClient, DemoSeed], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    client, seed = braket
    braket_key = f"braket:{seed.device_arn}"
    caplog.set_level(logging.WARNING, "quotaguard.events")
    ledger = MemoryLedger()  # one ledger, two guards: a fleet of two workers
    seen: list[Event] = []
    async with (
        BudgetGuard(ledger, braket=client, clock=clock, provider_alert_levels=(2, 1)) as one,
        BudgetGuard(ledger, braket=client, clock=clock, provider_alert_levels=(1, 2)) as two,
    ):
        one.on_event(seen.append)
        two.on_event(seen.append)
        await one.add_budget(Budget(TEAM, Unit.USD, Decimal("7.70"), alert_levels=(50,)))
        # The first task takes the $50 Braket limit past 1 % and 2 %: both, on this guard.
        first = await _submit(one, client, seed, 0)
        assert (await ledger.get_budget(braket_key)).alert_levels == (1, 2)
        assert [(a.budget, a.level) for a in first.decision.alerts] == [  # type: ignore[attr-defined]
            (braket_key, 1),
            (braket_key, 2),
        ]
        # Tasks 2 and 3 cross nothing; task 4 takes the team to $4.40 of $7.70 (>= 50 %),
        # whichever guard sends it, and the other guard reports nothing.
        for n, guard in enumerate([two, one, two, one, two], start=1):
            await _submit(guard, client, seed, n)
    alerts = [e for e in seen if isinstance(e, AlertCrossed)]
    assert [(e.budget, e.alert_level, e.used, e.limit, e.unit, e.provider) for e in alerts] == [
        (braket_key, 1, Decimal("1.10"), Decimal(50), "USD", "braket"),
        (braket_key, 2, Decimal("1.10"), Decimal(50), "USD", "braket"),
        (TEAM, 50, Decimal("4.40"), Decimal("7.70"), "USD", "braket"),
    ]
    records = [r for r in caplog.records if getattr(r, "qg_kind", None) == "alert_crossed"]
    assert len(records) == 3 and {r.levelno for r in records} == {logging.WARNING}
    last = records[-1]
    assert (last.qg_budget, last.qg_alert_level, last.qg_used, last.qg_limit) == (  # type: ignore[attr-defined]
        TEAM,
        50,
        "4.4",  # micro-units back to a Decimal: normalised
        "7.70",
    )
    assert last.qg_reservation_id == alerts[-1].reservation_id  # type: ignore[attr-defined]
    assert "reached 50% of its limit: 4.4 of 7.70 USD used" in last.getMessage()


@pytest.mark.parametrize("bad", [(0,), (150,), "80", (80.5,)])
async def test_bad_provider_alert_levels_are_refused_naming_the_argument(bad: object) -> None:
    with pytest.raises(InvalidInput) as info:
        BudgetGuard(MemoryLedger(), provider_alert_levels=bad)  # type: ignore[arg-type]
    assert info.value.field == "provider_alert_levels"
