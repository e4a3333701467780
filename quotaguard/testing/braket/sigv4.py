"""Server-side SigV4 verification for the emulator's Braket half.

Written with hashlib/hmac rather than botocore so that the client's signer (botocore) is checked
by an independent implementation: canonical request → string to sign → HMAC chain keyed by the
date/region/service of the ``Credential`` scope. Errors carry AWS's codes and messages and never
the canonical request (it holds ``x-amz-security-token``) or any key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from aiohttp import web

from quotaguard.testing.braket.errors import ApiError

__all__ = ["AUTH", "verify"]

AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9\-]+)"
    r"/(?P<service>braket)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9\-;]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
UNRECOGNIZED = "The security token included in the request is invalid."
_STAMP = "%Y%m%dT%H%M%SZ"


def _denied(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_query(raw: str) -> str:
    # Pairs as sent, sorted: what botocore signs for a URL's own query string.
    if not raw:
        return ""
    pairs = [pair.partition("=") for pair in raw.split("&")]
    return "&".join(f"{k}={v}" for k, _, v in sorted(pairs, key=lambda p: (p[0], p[2])))


def _stamp(request: web.Request) -> str:
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        datetime.strptime(stamp, _STAMP)
    except ValueError:
        raise _denied(
            "IncompleteSignatureException",
            "Authorization header requires existence of a valid 'X-Amz-Date' header.",
        ) from None
    return stamp


def verify(
    request: web.Request,
    body: bytes,
    match: re.Match[str],
    secrets: Mapping[str, str],
    *,
    now: datetime | None = None,
    max_skew: timedelta | None = None,
) -> None:
    """Raise :class:`ApiError` (403) unless ``request`` is signed by one of ``secrets``."""
    secret = secrets.get(match["key"])
    if secret is None:
        raise _denied("UnrecognizedClientException", UNRECOGNIZED)
    stamp = _stamp(request)
    if stamp[:8] != match["date"]:
        raise _denied(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{match['date']}' != '{stamp[:8]}', from '{stamp}'.",
        )
    if max_skew is not None and now is not None:
        sent = datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
        if abs(now - sent) > max_skew:
            limit = int(max_skew.total_seconds() // 60)
            edge = (now - max_skew if sent < now else now + max_skew).strftime(_STAMP)
            side = "earlier" if sent < now else "later"
            raise _denied(
                "InvalidSignatureException",
                f"Signature expired: {stamp} is now {side} than {edge} "
                f"({now.strftime(_STAMP)} {'-' if sent < now else '+'} {limit} min.)",
            )
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise _denied(
            "IncompleteSignatureException",
            "'Host' and 'X-Amz-Date' must be among the SignedHeaders.",
        )
    headers = []
    for name in signed:
        values = request.headers.getall(name, [])
        if not values:
            raise _denied("InvalidSignatureException", MISMATCH)
        headers.append(f"{name}:" + ",".join(" ".join(v.split()) for v in values))
    body_hash = hashlib.sha256(body).hexdigest()
    claimed = request.headers.get("X-Amz-Content-SHA256")
    # A signed hash that is not the body's is a changed body, whatever the signature says.
    if claimed is not None and not hmac.compare_digest(claimed, body_hash):
        raise _denied("InvalidSignatureException", MISMATCH)
    path, _, query = request.raw_path.partition("?")
    canonical = "\n".join(
        [
            request.method.upper(),
            quote(path or "/", safe="/~"),  # the sent (already encoded) path, encoded again
            _canonical_query(query),
            "\n".join(headers) + "\n",
            match["signed"],
            claimed if claimed is not None else body_hash,
        ]
    )
    scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret}".encode(), match["date"])
    for part in (match["region"], match["service"], "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        raise _denied("InvalidSignatureException", MISMATCH)
