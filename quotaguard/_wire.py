"""The plain HTTP answer the sans-I/O modules read: no transport, no aiohttp.

:mod:`quotaguard._http` makes these; ``quotaguard.ibm.sansio`` and ``quotaguard.braket.sansio``
decipher them, so the protocol code imports no HTTP library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Response"]


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
