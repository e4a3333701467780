"""Braket prices: a dated offline table, caller-supplied prices, and AWS's public Price List CSV.

QPU estimate = per-task fee + shots × per-shot fee (what Braket reserves as queued spend).
Simulators (SV1, DM1, TN1) bill per minute with a 3 s minimum; they never draw on Braket
spending limits but can count against a user's own USD budget. An unknown device has no
price: there is no guess, the caller must supply one (``with_price``) or the work is rejected.

AWS's Price List CSV is read by :mod:`quotaguard.braket.price_list`; downloading it is
:func:`quotaguard.braket.client.load_price_list` (the client module is the one that does HTTP).

The built-in table (:data:`DEFAULT_ROWS`) records a source and a date per row; it is as old as
its oldest price (:data:`DEFAULT_PRICES_AS_OF`). Its device list, and which devices are retired,
come from the Braket SDK (:mod:`quotaguard.braket.device_list`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import attrs

from quotaguard.braket.checks import check_shots, parse_device_arn
from quotaguard.braket.device_list import device_list, sdk_devices
from quotaguard.braket.price_list import catalog_key, parse_offer_csv
from quotaguard.engine.amounts import as_amount, money_context
from quotaguard.errors import InvalidInput

__all__ = [
    "DEFAULT_OFFERS_URL",
    "DEFAULT_PRICES",
    "DEFAULT_PRICES_AS_OF",
    "DEFAULT_ROWS",
    "SIMULATOR_MIN_SECONDS",
    "STALE_AFTER",
    "Price",
    "PriceRow",
    "PriceTable",
    "UnknownPrice",
    "unknown_price_reason",
]

DEFAULT_OFFERS_URL = (
    "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonBraket/current/index.csv"
)
SIMULATOR_MIN_SECONDS = 3
#: A built-in table older than this, with no Price List loaded, is warned about (once).
STALE_AFTER = timedelta(days=180)


def unknown_price_reason(device_arn: str, as_of: date | None) -> str:
    """What to do about a device with no price (one wording for the error and the rule)."""
    table = f"the price table of {as_of.isoformat()}" if as_of else "the price table"
    return (
        f"no price known for {device_arn} in {table}; pass a price (PriceTable.with_price("
        "device_arn, per_task, per_shot) or BraketTask(price_override=Price(...))) or load "
        "AWS's Price List (load_price_list())"
    )


class UnknownPrice(InvalidInput, LookupError):
    """No price is known for this device; supply one with ``PriceTable.with_price``."""

    def __init__(self, device_arn: str, as_of: date | None = None) -> None:
        self.device_arn = device_arn
        self.as_of = as_of
        super().__init__("device_arn", unknown_price_reason(device_arn, as_of))

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


@attrs.frozen
class PriceRow:
    """One built-in price (``None``: no published price was found), where and when it was read."""

    device_arn: str
    price: Price | None
    source: str
    as_of: date


_PAGE = "https://aws.amazon.com/braket/pricing/"
_READ = date(2026, 12, 1)
_READ_SOURCE = (
    f"{_PAGE} on-demand QPU table (QPU family, per-task 0.30 USD on every QPU), read 2026-12-01"
)
_COPIED = date(2025, 10, 1)
_COPIED_SOURCE = (
    f"{_PAGE} as copied on 2025-10-01; not found on a published page when re-read on 2026-12-01"
)
_UNPUBLISHED = f"no published price found ({_PAGE} and AWS's pages, searched 2026-12-01)"

#: The built-in table, a row per device of the Braket SDK's list that was ever priced or is
#: current. Retired devices keep their price: tasks already sent to them still settle.
DEFAULT_ROWS: tuple[PriceRow, ...] = (
    PriceRow(
        "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1", _qpu("0.08"), _READ_SOURCE, _READ
    ),
    PriceRow(
        "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-Enterprise-1",
        _qpu("0.08"),
        _READ_SOURCE,
        _READ,
    ),
    PriceRow("arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1", _qpu("0.03"), _READ_SOURCE, _READ),
    PriceRow(
        "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet", _qpu("0.00145"), _READ_SOURCE, _READ
    ),
    PriceRow(
        "arn:aws:braket:us-east-1::device/qpu/quera/Aquila", _qpu("0.01"), _READ_SOURCE, _READ
    ),
    PriceRow(
        "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3", _qpu("0.0009"), _READ_SOURCE, _READ
    ),
    PriceRow(
        "arn:aws:braket:eu-north-1::device/qpu/iqm/Emerald", _qpu("0.0016"), _COPIED_SOURCE, _COPIED
    ),
    PriceRow(
        "arn:aws:braket:eu-north-1::device/qpu/aqt/Ibex-Q1", _qpu("0.0235"), _COPIED_SOURCE, _COPIED
    ),
    PriceRow(
        "arn:aws:braket:us-west-1::device/qpu/rigetti/Cepheus-1-108Q", None, _UNPUBLISHED, _READ
    ),
    PriceRow(
        "arn:aws:braket:::device/quantum-simulator/amazon/sv1",
        _sim("0.075"),
        _COPIED_SOURCE,
        _COPIED,
    ),
    PriceRow(
        "arn:aws:braket:::device/quantum-simulator/amazon/dm1",
        _sim("0.075"),
        _COPIED_SOURCE,
        _COPIED,
    ),
    PriceRow(
        "arn:aws:braket:::device/quantum-simulator/amazon/tn1",
        _sim("0.275"),
        _COPIED_SOURCE,
        _COPIED,
    ),
)
DEFAULT_PRICES: Mapping[str, Price] = {
    row.device_arn: row.price for row in DEFAULT_ROWS if row.price is not None
}
#: The built-in table is as old as its oldest price.
DEFAULT_PRICES_AS_OF = min(row.as_of for row in DEFAULT_ROWS if row.price is not None)


def _prices(value: Mapping[str, Price]) -> dict[str, Price]:
    return dict(value)


def _dates(value: Mapping[str, date]) -> dict[str, date]:
    return dict(value)


def _catalog(value: Mapping[tuple[str, str], Price]) -> dict[tuple[str, str], Price]:
    return dict(value)


def _ref_key(device_arn: str) -> tuple[str, str]:
    ref = parse_device_arn(device_arn)
    return catalog_key(ref.region or "us-east-1", ref.name)


def _retired(value: frozenset[str] | set[str] | tuple[str, ...]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen
class PriceTable:
    """Prices by device ARN, then by (region, device name) from the Price List catalog.

    ``retired``: devices Braket no longer takes tasks for (their prices still settle the tasks
    sent before). ``price_list``: whether AWS's Price List was loaded into this table.
    ``dated``: when each built-in price was read; a device whose price is :data:`STALE_AFTER`
    old, with no Price List loaded, is warned about when it is estimated (a caller-supplied
    price has no date and is never stale).
    """

    prices: Mapping[str, Price] = attrs.field(factory=dict, converter=_prices)
    catalog: Mapping[tuple[str, str], Price] = attrs.field(factory=dict, converter=_catalog)
    as_of: date | None = None
    retired: frozenset[str] = attrs.field(default=frozenset(), converter=_retired)
    price_list: bool = False
    devices_source: str = ""
    dated: Mapping[str, date] = attrs.field(factory=dict, converter=_dates)

    @classmethod
    def default(cls) -> PriceTable:
        """The built-in table, its device list read from the installed Braket SDK (or, without
        it, from quotaguard's copy of that list)."""
        devices = device_list(sdk_devices())
        return cls(
            DEFAULT_PRICES,
            as_of=DEFAULT_PRICES_AS_OF,
            retired=devices.retired(),
            devices_source=devices.source,
            dated={row.device_arn: row.as_of for row in DEFAULT_ROWS if row.price is not None},
        )

    def is_retired(self, device_arn: str) -> bool:
        return device_arn in self.retired

    def retired_reason(self, device_arn: str) -> str:
        source = self.devices_source or "the device list"
        return (
            f"{device_arn} is retired ({source}); Braket refuses new tasks on it "
            "(DeviceRetiredException): choose a current device"
        )

    def stale_since(self, device_arn: str) -> datetime | None:
        """From when the price of ``device_arn`` is stale: :data:`STALE_AFTER` after the date
        it was read (``None``: never; a Price List was loaded, or the price has no date)."""
        read = None if self.price_list else self.dated.get(device_arn)
        if read is None:
            return None
        return datetime.combine(read, datetime.min.time()).replace(tzinfo=UTC) + STALE_AFTER

    def stale_message(self, device_arn: str) -> str:
        return (
            f"the built-in Braket price of {device_arn} dates from {self.dated[device_arn]}, "
            f"more than {STALE_AFTER.days} days ago, and no Price List was loaded: its "
            "estimates may be off; load AWS's Price List (quotaguard.braket.load_price_list()) "
            "or pass its price (PriceTable.with_price)"
        )

    def price_for(self, device_arn: str, *, region: str | None = None) -> Price | None:
        """The price of ``device_arn``; a simulator's (its ARN has no region) is the Price
        List's for ``region``, the region the task runs in (without one: us-east-1)."""
        price = self.prices.get(device_arn)
        if price is not None or not self.catalog:
            return price
        ref = parse_device_arn(device_arn)
        return self.catalog.get(catalog_key(ref.region or region or "us-east-1", ref.name))

    def estimate(
        self,
        device_arn: str,
        shots: int,
        *,
        duration: timedelta | None = None,
        region: str | None = None,
    ) -> Decimal:
        """Per-task fee + ``shots`` × per-shot fee (simulators: per minute, 3 s minimum)."""
        ref = parse_device_arn(device_arn)
        check_shots(shots, qpu=ref.is_qpu)
        price = self.price_for(ref.arn, region=region)
        if price is None:
            raise UnknownPrice(ref.arn, self.as_of)
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
        dated = {d: when for d, when in self.dated.items() if d != arn}
        return attrs.evolve(self, prices={**self.prices, arn: price}, dated=dated)

    def merged(self, other: PriceTable) -> PriceTable:
        """``other``'s prices (and its catalog, e.g. a fresh Price List) win over ours. A
        simulator the catalog prices in any region loses its region-free built-in price, so
        that each region's own price applies."""
        names = {name for _, name in other.catalog}

        def covered(arn: str) -> bool:
            ref = parse_device_arn(arn)
            return _ref_key(arn) in other.catalog or (not ref.region and ref.name.lower() in names)

        ours = {arn: price for arn, price in self.prices.items() if not covered(arn)}
        dated = {arn: when for arn, when in self.dated.items() if arn in ours}
        return PriceTable(
            {**ours, **other.prices},
            {**self.catalog, **other.catalog},
            other.as_of or self.as_of,
            self.retired | other.retired,
            self.price_list or other.price_list,
            other.devices_source or self.devices_source,
            {**dated, **other.dated},
        )

    @classmethod
    def from_offer_csv(cls, text: str) -> PriceTable:
        """Parse AWS's Price List CSV for Braket (on-demand QPU tasks and simulators)."""
        rates = parse_offer_csv(text)
        catalog = {key: Price(per_task=t, per_shot=s) for key, (t, s) in rates.qpu.items()}
        for key, per_minute in rates.per_minute.items():
            catalog[key] = Price(per_minute=per_minute, min_seconds=SIMULATOR_MIN_SECONDS)
        return cls(catalog=catalog, price_list=True)
