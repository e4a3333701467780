"""Prices: the offline table's formula, caller prices, and the Price List CSV loader."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard.braket import load_price_list
from quotaguard.braket.pricing import DEFAULT_PRICES, Price, PriceTable, UnknownPrice
from quotaguard.errors import InvalidInput, MalformedPayload
from tests._support.braket import FORTE, GARNET, SV1
from tests._support.price_list import HEADER, row

UNKNOWN = "arn:aws:braket:us-east-1::device/qpu/acme/Nova"


@pytest.mark.parametrize("arn", sorted(DEFAULT_PRICES))
@pytest.mark.parametrize("shots", [1, 100, 1000, 12_345])
def test_every_default_device_follows_the_formula(arn: str, shots: int) -> None:
    price = DEFAULT_PRICES[arn]
    got = PriceTable.default().estimate(arn, shots)
    if "::device/qpu/" in arn:
        assert price.per_task == Decimal("0.30") and price.per_shot > 0
        assert got == price.per_task + shots * price.per_shot
    else:  # simulators: per minute, 3 s minimum
        assert got == price.per_minute * 3 / 60


def test_known_list_prices() -> None:
    table = PriceTable.default()
    assert table.estimate(FORTE, 1000) == Decimal("80.30")
    assert table.estimate(GARNET, 1000) == Decimal("1.75")
    assert table.estimate("arn:aws:braket:us-east-1::device/qpu/quera/Aquila", 100) == Decimal(
        "1.30"
    )
    assert table.estimate(SV1, 0, duration=timedelta(minutes=2)) == Decimal("0.15")
    assert table.estimate(SV1, 0, duration=timedelta(seconds=1)) == Decimal("0.00375")
    tn1 = "arn:aws:braket:::device/quantum-simulator/amazon/tn1"
    assert table.estimate(tn1, 0, duration=timedelta(minutes=1)) == Decimal("0.275")


def test_unknown_device_needs_a_caller_price() -> None:
    table = PriceTable.default()
    assert table.price_for(UNKNOWN) is None
    with pytest.raises(UnknownPrice) as info:
        table.estimate(UNKNOWN, 10)
    assert info.value.field == "device_arn" and "with_price" in str(info.value)
    priced = table.with_price(UNKNOWN, "0.25", Decimal("0.01"))
    assert priced.estimate(UNKNOWN, 100) == Decimal("1.25")
    assert table.price_for(UNKNOWN) is None  # tables are values: the original is unchanged
    with pytest.raises(InvalidInput):
        table.with_price(UNKNOWN, "-1", "0")
    with pytest.raises(InvalidInput):
        Price(per_shot=0.1)  # type: ignore[arg-type]


def offer_csv() -> str:
    meta = [
        '"FormatVersion","v1.0"',
        '"Disclaimer","This pricing list is for informational purposes only."',
        '"Publication Date","2026-11-01T00:00:00Z"',
        '"Version","20261101000000"',
        '"OfferCode","AmazonBraket"',
    ]
    rows = [
        row("Quantum Task-Shot", "shots", "0.0700000000", "us-east-1", device="Forte-1"),
        row("Quantum Task", "tasks", "0.3000000000", "us-east-1", device="Forte-1"),
        # Managed-jobs rows use "Device Name" and another family: must not be picked.
        row(
            "Braket Managed Jobs QPU Task Shot", "shots", "9.99", "us-east-1", jobs_device="Forte-1"
        ),
        row("Braket Managed Jobs QPU Task", "tasks", "9.99", "us-east-1", jobs_device="Forte-1"),
        row("Quantum Task-Shot", "shots", "0.0020000000", "eu-north-1", device="Garnet"),
        row("Quantum Task", "tasks", "0.3000000000", "eu-north-1", device="Garnet"),
        row("Quantum Task-Shot", "shots", "0.5", "us-east-1", device="Nova"),
        row("Quantum Task", "tasks", "1.0", "us-east-1", device="Nova"),
        row("Quantum Task-Shot", "shots", "0.99", "us-east-1", device="Nova", currency="CNY"),
        row(
            "Simulator Task",
            "minutes",
            "0.0750000000",
            "us-east-1",
            version="SV1",
            operation="CompleteTask",
        ),
        row(
            "Braket Managed Jobs Simulator Task",
            "minutes",
            "5",
            "us-east-1",
            version="SV1",
            operation="Managed-Jobs",
        ),
    ]
    return "\n".join([*meta, HEADER, *rows]) + "\n"


def test_price_list_csv_picks_the_on_demand_task_rows() -> None:
    table = PriceTable.default().merged(PriceTable.from_offer_csv(offer_csv()))
    assert table.estimate(FORTE, 100) == Decimal("7.30")  # 0.30 + 100 x 0.07 from the CSV
    assert table.estimate(GARNET, 1000) == Decimal("2.30")
    assert table.estimate("arn:aws:braket:us-east-1::device/qpu/acme/Nova", 2) == Decimal("2.0")
    assert table.estimate(SV1, 0, duration=timedelta(minutes=1)) == Decimal("0.075")
    # Devices the CSV does not mention keep the offline price.
    aria = "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1"
    assert table.estimate(aria, 10) == Decimal("0.60")


def test_price_list_without_the_columns_is_malformed() -> None:
    with pytest.raises(MalformedPayload):
        PriceTable.from_offer_csv('a\nb\nc\nd\ne\n"SKU","Unit"\n')


async def test_loader_reads_a_local_file_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "index.csv"
    path.write_text(offer_csv())
    monkeypatch.setenv("BRAKET_PRICE_OFFERS_URL", str(path))
    table = await load_price_list()
    assert table.estimate(FORTE, 100) == Decimal("7.30")
    path.write_text("changed")  # cached: not read again
    assert (await load_price_list()).estimate(FORTE, 100) == Decimal("7.30")
    with pytest.raises(MalformedPayload):
        await load_price_list(refresh=True)


async def test_loader_fetches_over_http(emulator: object, tmp_path: Path) -> None:
    from aiohttp import web

    async def offers(request: web.Request) -> web.Response:
        return web.Response(text=offer_csv(), content_type="text/csv")

    app = web.Application()
    app.router.add_get("/offers/v1.0/aws/AmazonBraket/current/index.csv", offers)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/offers/v1.0/aws/AmazonBraket/current/index.csv"
        table = await load_price_list(url, refresh=True)
        assert table.estimate(GARNET, 1000) == Decimal("2.30")
    finally:
        await runner.cleanup()
