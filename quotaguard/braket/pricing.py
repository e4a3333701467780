"""Braket prices: a dated offline table, caller-supplied prices, and AWS's public Price List CSV.

QPU estimate = per-task fee + shots × per-shot fee (what Braket reserves as queued spend).
Simulators (SV1, DM1, TN1) bill per minute with a 3 s minimum; they never draw on Braket
spending limits but can count against a user's own USD budget. An unknown device has no
price: there is no guess, the caller must supply one (``with_price``) or the work is rejected.

The Price List CSV (the Braket SDK's ``braket/tracking/pricing.py`` reads the same file) has
five metadata lines, then a header with ``Product Family``, ``Region Code``, ``DeviceName``
(QPU rows), ``Version`` (simulator rows), ``operation``, ``Unit``, ``PricePerUnit``, ``Currency``.
Parsing it is here; downloading it is :func:`quotaguard.braket.client.load_price_list` (the
client module is the one that does HTTP).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import attrs

from quotaguard.braket.checks import check_shots, parse_device_arn
from quotaguard.engine.amounts import as_amount, money_context
from quotaguard.errors import InvalidInput, MalformedPayload

__all__ = [
    "DEFAULT_OFFERS_URL",
    "DEFAULT_PRICES",
    "DEFAULT_PRICES_AS_OF",
    "SIMULATOR_MIN_SECONDS",
    "Price",
    "PriceTable",
    "UnknownPrice",
]

DEFAULT_OFFERS_URL = (
    "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonBraket/current/index.csv"
)
SIMULATOR_MIN_SECONDS = 3


class UnknownPrice(InvalidInput, LookupError):
    """No price is known for this device; supply one with ``PriceTable.with_price``."""

    def __init__(self, device_arn: str) -> None:
        self.device_arn = device_arn
        super().__init__(
            "device_arn",
            f"no price known for {device_arn}; pass a price (PriceTable.with_price(device_arn, "
            "per_task, per_shot) or BraketTask(price_override=Price(...)))",
        )

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def _money(value: object, field: str = "price") -> Decimal:
    if isinstance(value, str):
        try:
            value = Decimal(value)
        except InvalidOperation as exc:
            raise InvalidInput(field, f"{value!r} is not a number") from exc
    return as_amount(value, field)


def _per_task(value: object) -> Decimal:
    return _money(value, "per_task")


def _per_shot(value: object) -> Decimal:
    return _money(value, "per_shot")


def _per_minute(value: object) -> Decimal:
    return _money(value, "per_minute")


def _min_seconds(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(attribute.name, f"expected whole seconds (an int >= 0), got {value!r}")


@attrs.frozen
class Price:
    """One device's list price in USD. QPUs: per task + per shot. Simulators: per minute."""

    per_task: Decimal = attrs.field(default=Decimal(0), converter=_per_task)
    per_shot: Decimal = attrs.field(default=Decimal(0), converter=_per_shot)
    per_minute: Decimal = attrs.field(default=Decimal(0), converter=_per_minute)
    min_seconds: int = attrs.field(default=0, validator=_min_seconds)

    def estimate(self, shots: int, duration: timedelta | None = None) -> Decimal:
        # In the library's own context (the caller's precision or traps never apply); Braket
        # bills simulators by the millisecond, so a part of one counts whole.
        with money_context():
            cost = self.per_task + self.per_shot * shots
            if self.per_minute:
                seconds = Decimal(max(self.min_seconds, 0))
                if duration is not None:
                    ms = -(-duration // timedelta(milliseconds=1))
                    seconds = max(seconds, Decimal(ms) / 1000)
                cost += self.per_minute * seconds / 60
            return cost


def _qpu(per_shot: str) -> Price:
    return Price(per_task=Decimal("0.30"), per_shot=Decimal(per_shot))


def _sim(per_minute: str) -> Price:
    return Price(per_minute=Decimal(per_minute), min_seconds=SIMULATOR_MIN_SECONDS)


#: The date the offline table was copied from https://aws.amazon.com/braket/pricing/.
DEFAULT_PRICES_AS_OF = date(2025, 10, 1)
DEFAULT_PRICES: Mapping[str, Price] = {
    "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1": _qpu("0.08"),
    "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-Enterprise-1": _qpu("0.08"),
    "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1": _qpu("0.03"),
    "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet": _qpu("0.00145"),
    "arn:aws:braket:eu-north-1::device/qpu/iqm/Emerald": _qpu("0.0016"),
    "arn:aws:braket:eu-north-1::device/qpu/aqt/Ibex-Q1": _qpu("0.0235"),
    "arn:aws:braket:us-east-1::device/qpu/quera/Aquila": _qpu("0.01"),
    "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3": _qpu("0.0009"),
    "arn:aws:braket:::device/quantum-simulator/amazon/sv1": _sim("0.075"),
    "arn:aws:braket:::device/quantum-simulator/amazon/dm1": _sim("0.075"),
    "arn:aws:braket:::device/quantum-simulator/amazon/tn1": _sim("0.275"),
}


def _prices(value: Mapping[str, Price]) -> dict[str, Price]:
    return dict(value)


def _catalog(value: Mapping[tuple[str, str], Price]) -> dict[tuple[str, str], Price]:
    return dict(value)


def _catalog_key(region: str, name: str) -> tuple[str, str]:
    return (region, name.lower())


def _ref_key(device_arn: str) -> tuple[str, str]:
    ref = parse_device_arn(device_arn)
    return _catalog_key(ref.region or "us-east-1", ref.name)


@attrs.frozen
class PriceTable:
    """Prices by device ARN, then by (region, device name) from the Price List catalog."""

    prices: Mapping[str, Price] = attrs.field(factory=dict, converter=_prices)
    catalog: Mapping[tuple[str, str], Price] = attrs.field(factory=dict, converter=_catalog)
    as_of: date | None = None

    @classmethod
    def default(cls) -> PriceTable:
        return cls(DEFAULT_PRICES, as_of=DEFAULT_PRICES_AS_OF)

    def price_for(self, device_arn: str) -> Price | None:
        price = self.prices.get(device_arn)
        if price is not None or not self.catalog:
            return price
        ref = parse_device_arn(device_arn)
        price = self.catalog.get(_catalog_key(ref.region, ref.name))
        if price is None and not ref.region:  # simulators' ARNs carry no region
            price = self.catalog.get(_catalog_key("us-east-1", ref.name))
        return price

    def estimate(
        self, device_arn: str, shots: int, *, duration: timedelta | None = None
    ) -> Decimal:
        """Per-task fee + ``shots`` × per-shot fee (simulators: per minute, 3 s minimum)."""
        ref = parse_device_arn(device_arn)
        check_shots(shots, qpu=ref.is_qpu)
        price = self.price_for(ref.arn)
        if price is None:
            raise UnknownPrice(ref.arn)
        return price.estimate(shots, duration)

    def with_price(
        self,
        device_arn: str,
        per_task: Decimal | str = Decimal(0),
        per_shot: Decimal | str = Decimal(0),
        *,
        per_minute: Decimal | str = Decimal(0),
    ) -> PriceTable:
        """A new table with a caller-supplied price for ``device_arn``."""
        arn = parse_device_arn(device_arn).arn
        price = Price(per_task=per_task, per_shot=per_shot, per_minute=per_minute)
        return attrs.evolve(self, prices={**self.prices, arn: price})

    def merged(self, other: PriceTable) -> PriceTable:
        """``other``'s prices (and its catalog, e.g. a fresh Price List) win over ours."""
        ours = {
            arn: price for arn, price in self.prices.items() if _ref_key(arn) not in other.catalog
        }
        return PriceTable(
            {**ours, **other.prices},
            {**self.catalog, **other.catalog},
            other.as_of or self.as_of,
        )

    @classmethod
    def from_offer_csv(cls, text: str) -> PriceTable:
        """Parse AWS's Price List CSV for Braket (on-demand QPU tasks and simulators)."""
        return cls(catalog=_parse_offer_csv(text))


def _decimal_cell(row: Mapping[str, str], line: int) -> Decimal:
    try:
        return _money(row.get("PricePerUnit", ""))
    except InvalidInput as exc:
        raise MalformedPayload(f"line {line}.PricePerUnit", exc.reason, provider="braket") from None


def _parse_offer_csv(text: str) -> dict[tuple[str, str], Price]:
    stream = io.StringIO(text)
    for _ in range(5):  # FormatVersion, Disclaimer, Publication Date, Version, OfferCode
        stream.readline()
    reader = csv.DictReader(stream)
    needed = {"Product Family", "Region Code", "PricePerUnit", "Currency"}
    missing = needed - set(reader.fieldnames or ())
    if missing:
        raise MalformedPayload(
            "header", f"Price List CSV lacks columns {sorted(missing)}", provider="braket"
        )
    shot: dict[tuple[str, str], Decimal] = {}
    task: dict[tuple[str, str], Decimal] = {}
    minute: dict[tuple[str, str], Decimal] = {}

    def keep(table: dict[tuple[str, str], Decimal], key: tuple[str, str], value: Decimal) -> None:
        # Duplicate rows (several effective dates): keep the highest; never undercount.
        table[key] = max(value, table.get(key, value))

    for line, row in enumerate(reader, start=7):
        if row.get("Currency") != "USD" or row.get("TermType", "OnDemand") != "OnDemand":
            continue
        family = row.get("Product Family", "")
        region = row.get("Region Code", "")
        if family in ("Quantum Task-Shot", "Quantum Task"):
            name = row.get("DeviceName") or ""
            if name:
                target = shot if family == "Quantum Task-Shot" else task
                keep(target, _catalog_key(region, name), _decimal_cell(row, line))
        elif family == "Simulator Task" and row.get("operation") == "CompleteTask":
            version = row.get("Version") or ""
            unit = (row.get("Unit") or "").lower()
            per = _decimal_cell(row, line)
            if version and unit in ("minutes", "minute", "min", "mins"):
                keep(minute, _catalog_key(region, version), per)
            elif version and unit in ("seconds", "second", "sec"):
                keep(minute, _catalog_key(region, version), per * 60)
    catalog: dict[tuple[str, str], Price] = {}
    for key in shot.keys() & task.keys():  # a QPU needs both fees, as the SDK requires
        catalog[key] = Price(per_task=task[key], per_shot=shot[key])
    for key, per_minute in minute.items():
        catalog[key] = Price(per_minute=per_minute, min_seconds=SIMULATOR_MIN_SECONDS)
    return catalog
