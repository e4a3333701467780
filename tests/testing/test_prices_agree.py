"""The guard's Braket estimate and the emulator's charge agree, device by device.

The two price tables are written separately from AWS's published pricing
(``quotaguard.braket.pricing.DEFAULT_PRICES`` and ``quotaguard.testing.braket.prices.PRICES``),
so a wrong price, fee or billing rule in either one fails here instead of both agreeing with
themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from quotaguard.braket import BraketClient, BraketTask, PriceTable, estimate
from quotaguard.braket.pricing import DEFAULT_PRICES
from quotaguard.engine.amounts import to_micro
from quotaguard.testing import Emulator, FakeClock
from quotaguard.testing.braket.devices import RETIRED
from quotaguard.testing.braket.prices import PRICES, DevicePrice
from tests._support.aws import botocore_session
from tests._support.braket import FORTE, SV1

ACTION = '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}}'
BOTH = sorted(DEFAULT_PRICES.keys() & PRICES.keys())
QPUS = [arn for arn in BOTH if "device/qpu/" in arn]
SIMULATORS = [arn for arn in BOTH if arn not in QPUS]
#: Braket takes no new task on a retired device; the server tests send only to current ones.
SERVED = [arn for arn in BOTH if arn not in RETIRED]
SHOTS = (1, 7, 100, 1000, 12_345)
#: Whole milliseconds around the 3 s minimum and well past it.
DURATIONS = (
    None,
    timedelta(0),
    timedelta(milliseconds=1),
    timedelta(seconds=2, milliseconds=999),
    timedelta(seconds=3),
    timedelta(seconds=3, milliseconds=1),
    timedelta(seconds=61, milliseconds=234),
    timedelta(hours=2, milliseconds=7),
)
NOW = FakeClock()()


def guard_estimate(
    arn: str, shots: int, duration: timedelta | None = None, *, table: PriceTable | None = None
) -> Decimal:
    task = BraketTask(arn, shots, max_duration=duration)
    return estimate(task, prices=table or PriceTable.default(), limit=None, now=NOW).amount


def disagreements(table: PriceTable, emulator: Mapping[str, DevicePrice]) -> list[str]:
    """Every (device, shots, duration) where the guard's estimate is not the emulator's charge."""
    out = []
    for arn in sorted(table.prices.keys() & emulator.keys()):
        qpu = "device/qpu/" in arn
        cases = (
            [(n, None) for n in SHOTS] if qpu else [(n, d) for n in (0, 1000) for d in DURATIONS]
        )
        for shots, duration in cases:
            guard = guard_estimate(arn, shots, duration, table=table)
            charged = emulator[arn].charge(shots, duration)
            if to_micro(guard) != to_micro(charged):  # what a ledger holds, rounded up
                out.append(f"{arn} shots={shots} duration={duration}: {guard} != {charged}")
    return out


def test_both_tables_know_the_same_devices() -> None:
    # A device the guard prices that the emulator does not serve (or the reverse) goes unchecked.
    assert set(DEFAULT_PRICES) == set(PRICES)
    assert QPUS and SIMULATORS


def test_the_guards_estimate_is_the_emulators_charge_for_every_device() -> None:
    assert disagreements(PriceTable.default(), PRICES) == []


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param(lambda t, e: (t.with_price(FORTE, "0.30", "0.09"), e), id="guard-per-shot"),
        pytest.param(lambda t, e: (t.with_price(FORTE, "0.35", "0.08"), e), id="guard-per-task"),
        pytest.param(
            lambda t, e: (t, {**e, FORTE: attrs.evolve(e[FORTE], per_shot=Decimal("0.07"))}),
            id="emulator-per-shot",
        ),
        pytest.param(
            lambda t, e: (t, {**e, SV1: attrs.evolve(e[SV1], per_minute=Decimal("0.08"))}),
            id="emulator-per-minute",
        ),
        pytest.param(
            lambda t, e: (t, {**e, SV1: attrs.evolve(e[SV1], min_billed=timedelta(seconds=1))}),
            id="emulator-minimum-duration",
        ),
    ],
)
def test_a_wrong_price_on_either_side_is_caught(wrong) -> None:  # type: ignore[no-untyped-def]
    table, emulator = wrong(PriceTable.default(), PRICES)
    found = disagreements(table, emulator)
    assert found
    assert all(line.startswith((FORTE, SV1)) for line in found)


# -- through the server: what CreateQuantumTask reserves and what a finished simulator bills --


@pytest.fixture
async def emu_and_client(
    emulator: Emulator, clock: FakeClock
) -> AsyncIterator[tuple[Emulator, FakeClock, BraketClient]]:
    session = botocore_session()  # the key the emulator fixture verifies signatures by
    async with BraketClient("us-east-1", endpoint_url=emulator.url, botocore_session=session) as c:
        yield emulator, clock, c


@pytest.mark.parametrize("arn", [arn for arn in QPUS if arn in SERVED])
async def test_the_server_reserves_what_the_guard_estimates_on_every_qpu(
    arn: str, emu_and_client: tuple[Emulator, FakeClock, BraketClient]
) -> None:
    emu, clock, client = emu_and_client
    emu.braket.add_spending_limit(arn, "100000")
    queued = Decimal(0)
    for shots in SHOTS:
        limit = await client.spending_limit_for(arn)
        assert limit is not None
        guard = estimate(
            BraketTask(arn, shots), prices=PriceTable.default(), limit=limit, now=clock()
        )
        [charge] = guard.charges
        await client.create_quantum_task(arn, ACTION, shots, "amzn-braket-prices", "tasks")
        queued += charge.amount
        after = await client.spending_limit_for(arn)
        assert after is not None
        assert after.queued_spend == queued, (arn, shots)


@pytest.mark.parametrize("arn", [arn for arn in SIMULATORS if arn in SERVED])
async def test_a_finished_simulator_task_is_billed_what_the_guard_estimates(
    arn: str, emu_and_client: tuple[Emulator, FakeClock, BraketClient]
) -> None:
    emu, clock, client = emu_and_client
    for duration in DURATIONS[1:]:
        task_arn = await client.create_quantum_task(arn, ACTION, 100, "amzn-braket-prices", "t")
        assert emu.braket.tasks[task_arn].cost == 0  # nothing is reserved for a simulator
        done = emu.braket.complete_task(task_arn, duration=duration)
        assert to_micro(done.cost) == to_micro(guard_estimate(arn, 100, duration)), (arn, duration)
    # Without a duration, the run is the time between creation and completion on the clock.
    task_arn = await client.create_quantum_task(arn, ACTION, 0, "amzn-braket-prices", "t")
    clock.advance(seconds=95, milliseconds=5)
    done = emu.braket.complete_task(task_arn)
    expected = guard_estimate(arn, 0, timedelta(seconds=95, milliseconds=5))
    assert to_micro(done.cost) == to_micro(expected)
