"""The plain HTTP answer the sans-I/O modules read: no transport, no aiohttp.

:mod:`quotaguard._http` makes these; ``quotaguard.ibm.sansio`` and ``quotaguard.braket.sansio``
decipher them, so the protocol code imports no HTTP library.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["Response", "negative_figure"]


@attrs.frozen
class Response:
    """One HTTP answer. ``headers`` has lower-case keys (``_http`` lower-cases them once), so a
    header is looked up in one spelling: ``headers.get("retry-after")``."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def negative_figure(
    value: object, path: str, wire_name: Callable[[str], str] = str
) -> tuple[str, int | Decimal] | None:
    """The wire path and value of the first negative number in a structured payload, if any.

    Every number a provider sends us (spend, limits, seconds, shots) is a count or an amount:
    a negative one is outside its domain and must never be taken as a credit. ``value`` is an
    attrs model (or a list of them); ``wire_name`` spells an attribute as the wire does.
    """
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return (path, value) if value < 0 else None
    fields: tuple[attrs.Attribute[Any], ...] | None = getattr(type(value), "__attrs_attrs__", None)
    if isinstance(value, list | tuple):
        items: list[tuple[str, object]] = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif fields is not None:
        items = [(f"{path}.{wire_name(f.name)}", getattr(value, f.name)) for f in fields]
    else:
        return None
    for where, item in items:
        if (found := negative_figure(item, where, wire_name)) is not None:
            return found
    return None
