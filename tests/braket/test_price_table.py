"""The built-in Braket price table against the Braket SDK's device list and AWS's Price List
(issue 12 #15): retired devices, devices with no published price, per-row sources, the stale
table warning, Price List units, and simulators priced in the task's region."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from quotaguard import BudgetGuard
from quotaguard.braket import BraketClient, BraketTask, Price, PriceTable, UnknownPrice, estimate
from quotaguard.braket.pricing import DEFAULT_PRICES_AS_OF
from quotaguard.errors import BudgetExceeded, MalformedPayload
from quotaguard.ledger import MemoryLedger
from quotaguard.testing import Emulator, FakeClock
from tests._support.aws import botocore_session
from tests._support.braket import ACTION, FORTE, SV1
from tests._support.price_list import offers, row

ARIA = "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1"
ANKAA = "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3"
TN1 = "arn:aws:braket:::device/quantum-simulator/amazon/tn1"
CEPHEUS = "arn:aws:braket:us-west-1::device/qpu/rigetti/Cepheus-1-108Q"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def sim_row(unit: str, price: str, region: str, version: str = "SV1") -> str:
    return row("Simulator Task", unit, price, region, version=version, operation="CompleteTask")


# -- the device list: retired devices, and the current ones ----------------------------------


@pytest.mark.parametrize("arn", [ARIA, ANKAA, TN1])
def test_a_retired_device_is_refused_and_the_sdk_is_named(arn: str) -> None:
    task = BraketTask(arn, 10, max_duration=timedelta(seconds=5))
    est = estimate(task, prices=PriceTable.default(), limit=None, now=NOW)
    assert [v.rule for v in est.violations] == ["braket.device.unavailable"]
    assert "retired" in est.violations[0].message
    assert "amazon-braket-sdk" in est.violations[0].message
    # Its price stays: a task sent before it retired still settles.
    assert est.amount > 0


async def test_a_retired_device_is_refused_before_anything_is_sent(emulator: Emulator) -> None:
    sent: list[str] = []

    async def send() -> str:
        sent.append(ARIA)
        return "never"

    session = botocore_session()
    async with (
        BraketClient("us-east-1", endpoint_url=emulator.url, botocore_session=session) as client,
        BudgetGuard(MemoryLedger(), braket=client) as guard,
    ):
        with pytest.raises(BudgetExceeded) as caught:
            await guard.submit(BraketTask(ARIA, 10), send)
    assert caught.value.decision.rules == ("braket.device.unavailable",)
    assert sent == []


async def test_the_emulator_refuses_a_task_on_a_retired_device_as_braket_does(boto: Any) -> None:
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(
            boto.create_quantum_task,
            deviceArn=ARIA,
            shots=10,
            action=ACTION,
            outputS3Bucket="amzn-braket-b",
            outputS3KeyPrefix="p",
        )
    assert caught.value.response["Error"]["Code"] == "DeviceRetiredException"


def test_the_table_knows_every_device_of_the_installed_sdk() -> None:
    from importlib.metadata import version

    from quotaguard.braket.device_list import KNOWN_DEVICES, KNOWN_DEVICES_SDK, sdk_devices
    from quotaguard.braket.pricing import DEFAULT_ROWS

    sdk = sdk_devices()
    assert sdk is not None, "the Braket SDK is installed in the test environment"
    table = PriceTable.default()
    gone = {arn for arn, retired in sdk.devices.items() if retired}
    installed = tuple(int(part) for part in version("amazon-braket-sdk").split(".")[:3])
    if installed >= tuple(int(part) for part in KNOWN_DEVICES_SDK.split(".")):
        # The copy used without the SDK is the SDK's list: a new SDK fails here until copied.
        assert sdk.devices == KNOWN_DEVICES, (
            f"update KNOWN_DEVICES (copied from {KNOWN_DEVICES_SDK})"
        )
        assert table.retired == gone
        known = sdk.devices
    else:
        # An older SDK (the floor) knows fewer retirements and devices: the copy's still count.
        assert gone <= table.retired
        known = KNOWN_DEVICES
    current = {arn for arn, retired in known.items() if not retired}
    assert current <= {r.device_arn for r in DEFAULT_ROWS}, "every current device has a row"
    for r in DEFAULT_ROWS:
        assert r.source and r.as_of, r
        assert r.device_arn in known, f"{r.device_arn} is not a device of the SDK's list"


@pytest.fixture
def no_sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from quotaguard.braket import device_list

    monkeypatch.setattr(device_list, "_enum_file", lambda: None)
    device_list.sdk_devices.cache_clear()
    yield
    device_list.sdk_devices.cache_clear()


@pytest.mark.usefixtures("no_sdk")
def test_without_the_sdk_the_table_uses_its_copy_of_the_list() -> None:
    table = PriceTable.default()
    assert ARIA in table.retired and TN1 in table.retired
    assert "1.127.5" in table.retired_reason(ARIA)
    assert table.estimate(FORTE, 100) == Decimal("8.30")


def test_the_sdk_cannot_bring_a_retired_device_back() -> None:
    from quotaguard.braket.device_list import DeviceList, device_list

    older = DeviceList({ARIA: False, FORTE: False}, "an older SDK")
    assert ARIA in device_list(older).retired()


# -- devices with no published price ---------------------------------------------------------


def test_cepheus_has_no_price_and_the_error_names_the_tables_date() -> None:
    table = PriceTable.default()
    with pytest.raises(UnknownPrice) as caught:
        table.estimate(CEPHEUS, 100)
    assert DEFAULT_PRICES_AS_OF.isoformat() in str(caught.value)
    est = estimate(BraketTask(CEPHEUS, 100), prices=table, limit=None, now=NOW)
    assert [v.rule for v in est.violations] == ["braket.price.unknown"]
    assert DEFAULT_PRICES_AS_OF.isoformat() in est.violations[0].message
    assert "load_price_list" in est.violations[0].message
    # A caller's price, or a Price List that has one, prices it.
    priced = BraketTask(CEPHEUS, 100, price_override=Price(per_task="0.30", per_shot="0.001"))
    assert estimate(priced, prices=table, limit=None, now=NOW).violations == ()
    listed = table.merged(
        PriceTable.from_offer_csv(
            offers(
                row("Quantum Task-Shot", "shots", "0.002", "us-west-1", device="Cepheus-1-108Q"),
                row("Quantum Task", "tasks", "0.30", "us-west-1", device="Cepheus-1-108Q"),
            )
        )
    )
    assert listed.estimate(CEPHEUS, 100) == Decimal("0.50")


# -- a stale price warns once per device ------------------------------------------------------


def _day(days: int) -> datetime:
    return datetime.combine(DEFAULT_PRICES_AS_OF, datetime.min.time(), UTC) + timedelta(days)


async def _checks(
    prices: PriceTable, clock: FakeClock, times: int, device: str = SV1, shots: int = 0
) -> None:
    async with BudgetGuard(MemoryLedger(), prices=prices, clock=clock) as guard:
        for _ in range(times):
            await guard.check(BraketTask(device, shots, max_duration=timedelta(seconds=5)))
            clock.advance(days=1)


def _stale(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "built-in Braket price" in r.getMessage()]


async def test_a_price_older_than_180_days_warns_once_with_its_device_and_date(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard")
    clock = FakeClock(_day(178))
    await _checks(PriceTable.default(), clock, 2)  # days 178 and 179: not yet
    assert _stale(caplog) == []
    await _checks(PriceTable.default(), FakeClock(_day(180)), 3)  # days 180..182: once
    [message] = _stale(caplog)
    assert SV1 in message and DEFAULT_PRICES_AS_OF.isoformat() in message
    assert "load_price_list" in message


async def test_a_fresh_price_does_not_warn_because_another_row_is_old(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Forte's price was read on 2026-12-01 and SV1's copied on 2025-10-01. The old table
    # warned about its oldest row for every device, so every user saw it from day one.
    caplog.set_level(logging.WARNING, "quotaguard")
    today = FakeClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    await _checks(PriceTable.default(), today, 2, device=FORTE, shots=10)
    assert _stale(caplog) == []
    await _checks(PriceTable.default(), FakeClock(datetime(2026, 12, 1, 12, tzinfo=UTC)), 2)
    [message] = _stale(caplog)
    assert SV1 in message and FORTE not in message


def test_a_price_the_caller_supplies_is_never_stale() -> None:
    table = PriceTable.default()
    assert table.stale_since(SV1) == _day(180)
    assert table.with_price(SV1, per_minute="0.075").stale_since(SV1) is None
    assert table.stale_since("arn:aws:braket:us-east-1::device/qpu/acme/New-1") is None


async def test_a_loaded_price_list_silences_the_stale_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard")
    listed = PriceTable.default().merged(
        PriceTable.from_offer_csv(offers(sim_row("minutes", "0.075", "us-east-1")))
    )
    await _checks(listed, FakeClock(_day(400)), 2)
    assert _stale(caplog) == []


# -- the Price List: time units and regions --------------------------------------------------


def test_a_simulator_row_with_a_time_unit_quotaguard_does_not_know_refuses_the_list() -> None:
    text = offers(sim_row("minutes", "0.075", "us-east-1"), sim_row("Fortnights", "9", "us-west-2"))
    with pytest.raises(MalformedPayload) as caught:
        PriceTable.from_offer_csv(text)
    assert caught.value.field == "line 8.Unit"
    assert "'Fortnights'" in str(caught.value) and "us-west-2" in str(caught.value)


@pytest.mark.parametrize(
    ("unit", "price"), [("Hrs", "4.5"), ("seconds", "0.00125"), ("Minutes", "0.075")]
)
def test_a_simulator_row_is_read_in_its_time_unit(unit: str, price: str) -> None:
    table = PriceTable.from_offer_csv(offers(sim_row(unit, price, "us-east-1")))
    assert table.estimate(SV1, 0, duration=timedelta(minutes=2)) == Decimal("0.150")


def _two_regions() -> PriceTable:
    # Made-up figures: the point is that each region's own row is used.
    text = offers(sim_row("minutes", "0.075", "us-east-1"), sim_row("minutes", "0.09", "us-west-2"))
    return PriceTable.default().merged(PriceTable.from_offer_csv(text))


def test_a_simulator_is_priced_in_the_region_the_task_runs_in() -> None:
    table = _two_regions()
    one_minute = timedelta(minutes=1)
    assert table.estimate(SV1, 0, duration=one_minute, region="us-west-2") == Decimal("0.09")
    assert table.estimate(SV1, 0, duration=one_minute, region="us-east-1") == Decimal("0.075")
    task = BraketTask(SV1, 0, max_duration=one_minute)
    west = estimate(task, prices=table, limit=None, now=NOW, region="us-west-2")
    assert west.amount == Decimal("0.09")
    # A region the Price List has no row for is not priced from another region's row.
    assert table.price_for(SV1, region="eu-north-1") is None


async def test_a_finished_simulator_task_settles_at_its_regions_price(
    emulator: Emulator, clock: FakeClock
) -> None:
    from quotaguard.guard.braket_adapter import BraketAdapter

    session = botocore_session()
    async with BraketClient("us-west-2", endpoint_url=emulator.url, botocore_session=session) as c:
        arn = await c.create_quantum_task(SV1, ACTION, 0, "amzn-braket-b", "p")
        assert arn.startswith("arn:aws:braket:us-west-2:")
        clock.advance(minutes=1)
        emulator.braket.complete_task(arn)
        adapter = BraketAdapter(
            c,
            prices=_two_regions(),
            ledger=MemoryLedger(),
            clock=FakeClock(),
            ttl=timedelta(seconds=60),
            max_staleness=timedelta(minutes=10),
        )
        assert await adapter.actual(arn, Decimal(0)) == Decimal("0.09")
