"""The plain HTTP answer the sans-I/O modules read: no transport, no aiohttp.

:mod:`quotaguard._http` makes these; ``quotaguard.ibm.sansio`` and ``quotaguard.braket.sansio``
decipher them, so the protocol code imports no HTTP library. An error answer is scrubbed of
credentials (:func:`scrub_response`) before anyone reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["REDACTED", "Response", "negative_figure", "scrub", "scrub_response"]

REDACTED = "[redacted]"
_METHOD = r"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)"
#: Shapes that carry credentials whatever their value: what AWS quotes back in a signature
#: error (the canonical request holds x-amz-security-token; the string to sign follows), the
#: headers a gateway may echo, and bearer tokens.
_BLOCKS = (
    # A SigV4 canonical request: the method line, the path line, ... the payload hash line.
    re.compile(rf"(?ms)^'?{_METHOD}\n/.*?(?:^[0-9a-fA-F]{{64}}'?$|\Z)"),
    # A SigV4 string to sign: algorithm, date, scope, hash.
    re.compile(r"(?ms)^'?AWS4-HMAC-SHA256\n.*?(?:^[0-9a-fA-F]{64}'?$|\Z)"),
)
_VALUE = r"[^\s\"',;&]+"
_FIELDS = (
    # Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
    (re.compile(r"(?i)\b(AWS4-HMAC-SHA256)\s+Credential=[^\n\"']*"), r"\1 " + REDACTED),
    (re.compile(rf"(?i)\b(Bearer|Basic)\s+{_VALUE}"), r"\1 " + REDACTED),
    (
        re.compile(
            r"(?i)\b(x-amz-signature|x-amz-credential|credential|signature|api[_-]?key"
            rf"|[\w-]*token|[\w-]*secret[\w-]*|password)(\s*[:=]\s*){_VALUE}"
        ),
        r"\1\2" + REDACTED,
    ),
)


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


def scrub(text: str, secrets: Collection[str] = ()) -> str:
    """``text`` without any of ``secrets`` and without anything shaped like a credential
    (a SigV4 canonical request or string to sign, an Authorization value, a security token,
    an API key or bearer token): each becomes ``[redacted]``; the rest of the words stay."""
    for block in _BLOCKS:
        text = block.sub(REDACTED, text)
    for pattern, replacement in _FIELDS:
        text = pattern.sub(replacement, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _scrub_json(data: Any, secrets: Collection[str]) -> Any:
    if isinstance(data, str):
        return scrub(data, secrets)
    if isinstance(data, list):
        return [_scrub_json(item, secrets) for item in data]
    if isinstance(data, dict):
        return {scrub(str(k), secrets): _scrub_json(v, secrets) for k, v in data.items()}
    return data


def scrub_response(response: Response, secrets: Collection[str] = ()) -> Response:
    """An error answer whose body and header values are scrubbed (:func:`scrub`), so no
    provider message built from it can carry a credential. A JSON body stays JSON (each string
    scrubbed); it is rewritten only when something was removed."""
    text = response.body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        cleaned = scrub(text, secrets)
        body = cleaned.encode() if cleaned != text else response.body
    else:
        scrubbed = _scrub_json(data, secrets)
        body = json.dumps(scrubbed).encode() if scrubbed != data else response.body
    headers = {key: scrub(value, secrets) for key, value in response.headers.items()}
    return attrs.evolve(response, headers=headers, body=body)
