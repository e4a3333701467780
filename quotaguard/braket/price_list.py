"""AWS's public Price List CSV for Braket, read into a catalog: (region, device name) -> Price.

The file (the Braket SDK's ``braket/tracking/pricing.py`` reads the same one) has five metadata
lines, then a header with ``Product Family``, ``Region Code``, ``DeviceName`` (QPU rows),
``Version`` (simulator rows), ``operation``, ``Unit``, ``PricePerUnit``, ``Currency``. A row
that cannot be priced refuses the file with the line it is on; nothing is dropped unsaid.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from quotaguard.engine.amounts import as_amount, money_context
from quotaguard.errors import InvalidInput, MalformedPayload

__all__ = ["Rates", "catalog_key", "parse_offer_csv"]

#: (region, lower-cased device name or simulator version) -> USD.
Key = tuple[str, str]


def catalog_key(region: str, name: str) -> Key:
    return (region, name.lower())


def _decimal_cell(row: Mapping[str, str], line: int) -> Decimal:
    cell = row.get("PricePerUnit", "")
    try:
        return as_amount(Decimal(cell), "PricePerUnit")
    except InvalidOperation:
        reason = f"{cell!r} is not a number"
    except InvalidInput as exc:
        reason = exc.reason
    raise MalformedPayload(f"line {line}.PricePerUnit", reason, provider="braket")


class Rates:
    """What the file prices: QPUs per task and per shot, simulators per minute."""

    __slots__ = ("per_minute", "qpu")

    def __init__(self, qpu: dict[Key, tuple[Decimal, Decimal]], per_minute: dict[Key, Decimal]):
        self.qpu = qpu  # key -> (per task, per shot)
        self.per_minute = per_minute


#: A simulator row's ``Unit`` -> (units in a minute, minutes in a unit): a per-unit price
#: times the first over the second is a per-minute price. The SDK's Tracker reads ``Unit`` as
#: a ``timedelta`` keyword; these are those, singular and plural, and their short forms.
_UNIT_PER_MINUTE = {
    **dict.fromkeys(("weeks", "week"), (1, 7 * 24 * 60)),
    **dict.fromkeys(("days", "day"), (1, 24 * 60)),
    **dict.fromkeys(("hours", "hour", "hrs", "hr"), (1, 60)),
    **dict.fromkeys(("minutes", "minute", "mins", "min"), (1, 1)),
    **dict.fromkeys(("seconds", "second", "secs", "sec"), (60, 1)),
    **dict.fromkeys(("milliseconds", "millisecond", "ms"), (60_000, 1)),
}


def _per_minute_price(row: Mapping[str, str], line: int, region: str) -> Decimal:
    """A simulator row's price per minute. An unknown time unit refuses the whole Price List:
    dropping the row would leave the device priced by an older table, or not at all, and
    nobody would know."""
    unit = (row.get("Unit") or "").strip()
    factor = _UNIT_PER_MINUTE.get(unit.lower())
    if factor is None:
        raise MalformedPayload(
            f"line {line}.Unit",
            f"{unit!r} (simulator {row.get('Version')!r} in {region or 'no region'}) is not a "
            f"time unit quotaguard can price ({', '.join(sorted(_UNIT_PER_MINUTE))}); the Price "
            "List is refused rather than read without this row: price the device with "
            "PriceTable.with_price meanwhile, and report the unit",
            provider="braket",
        )
    with money_context():  # a quotient rounds up, never down
        return _decimal_cell(row, line) * factor[0] / factor[1]


def parse_offer_csv(text: str) -> Rates:
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
    shot: dict[Key, Decimal] = {}
    task: dict[Key, Decimal] = {}
    minute: dict[Key, Decimal] = {}

    def keep(table: dict[Key, Decimal], key: Key, value: Decimal) -> None:
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
                keep(target, catalog_key(region, name), _decimal_cell(row, line))
        elif family == "Simulator Task" and row.get("operation") == "CompleteTask":
            version = row.get("Version") or ""
            if version:
                keep(minute, catalog_key(region, version), _per_minute_price(row, line, region))
    # A QPU needs both fees, as the SDK requires.
    return Rates({key: (task[key], shot[key]) for key in shot.keys() & task.keys()}, minute)
