"""Rows of AWS's Price List CSV for Braket, written as the real file spells them."""

from __future__ import annotations

__all__ = ["HEADER", "offers", "row"]

HEADER = (
    '"SKU","OfferTermCode","RateCode","TermType","PriceDescription","EffectiveDate",'
    '"StartingRange","EndingRange","Unit","PricePerUnit","Currency","Product Family",'
    '"serviceCode","Location","Location Type","usageType","operation","Region Code",'
    '"Device Name","DeviceName","Version"'
)


def row(
    family: str,
    unit: str,
    price: str,
    region: str,
    *,
    device: str = "",
    jobs_device: str = "",
    version: str = "",
    operation: str = "",
    currency: str = "USD",
    term: str = "OnDemand",
) -> str:
    cells = [
        "SKU",
        "JRTCKXETXF",
        "RATE",
        term,
        "desc",
        "2025-09-01T00:00:00Z",
        "0",
        "Inf",
        unit,
        price,
        currency,
        family,
        "AmazonBraket",
        "US East (N. Virginia)",
        "AWS Region",
        "usage",
        operation,
        region,
        jobs_device,
        device,
        version,
    ]
    return ",".join(f'"{c}"' for c in cells)


def offers(*rows: str) -> str:
    """A whole Price List file: the five metadata lines, the header, ``rows``."""
    meta = ['"FormatVersion","v1.0"', '"Disclaimer","x"', '"Publication Date","x"']
    return "\n".join([*meta, '"Version","1"', '"OfferCode","AmazonBraket"', HEADER, *rows]) + "\n"
