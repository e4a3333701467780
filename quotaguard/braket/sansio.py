"""Pure Braket protocol pieces: build a request from botocore's model, sign it, read the answer.

No I/O here. botocore supplies the ``braket`` service model (2019-09-01), the rest-json
serializer and the SigV4 signer; we skip a botocore *client* because it runs its event system
and endpoint rules on every call and its response parser is the slowest step (DESIGN.md
"Clients"). Errors are read from ``x-amzn-ErrorType`` and the body's ``__type``/``code``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import attrs
import botocore.auth
import botocore.credentials
import botocore.exceptions
import botocore.serialize
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.model import OperationModel, ServiceModel

from quotaguard._http import check_endpoint
from quotaguard.braket.rules import RULE_SERVER
from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Decision, Violation
from quotaguard.errors import (
    AuthenticationError,
    BadRequest,
    BudgetExceeded,
    Conflict,
    DeviceUnavailable,
    NotFound,
    PermissionDenied,
    ProviderError,
    ProviderUnavailable,
    ServiceQuotaExceeded,
    Throttled,
)

__all__ = [
    "OVER_LIMIT_PREFIX",
    "RULE_SERVER",
    "PreparedRequest",
    "decode_error",
    "endpoint_for",
    "operation",
    "prepare",
    "service_model",
]

PROVIDER = "braket"
#: Braket's own over-limit rejection starts with this (HTTP 400 ValidationException).
OVER_LIMIT_PREFIX = "Attempted to spend over the spending limit"


@functools.cache
def service_model() -> ServiceModel:
    """botocore's ``braket`` model, loaded once per process (loading costs milliseconds)."""
    return botocore.session.get_session().get_service_model("braket")


@functools.cache
def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


@functools.cache
def _serializer() -> Any:
    # Inputs are validated by quotaguard before this point, with errors naming the field.
    return botocore.serialize.create_serializer("rest-json", include_validation=False)


def endpoint_for(region: str, endpoint_url: str | None = None) -> str:
    """The Braket endpoint: explicit URL, then ``AWS_ENDPOINT_URL_BRAKET``/``AWS_ENDPOINT_URL``,
    then ``https://braket.{region}.amazonaws.com`` (``.com.cn`` in China regions)."""
    url = (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_BRAKET")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    if url:
        return check_endpoint(url, "endpoint_url")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://braket.{region}.{suffix}"


class _QuietSigV4Auth(botocore.auth.SigV4Auth):
    """botocore's SigV4, minus its DEBUG logging: botocore logs the canonical request, which
    carries ``x-amz-security-token``. Same steps, same bytes, nothing logged."""

    def add_auth(self, request: AWSRequest) -> None:
        if self.credentials is None:  # pragma: no cover - prepare() always passes credentials
            raise botocore.exceptions.NoCredentialsError()
        # Through botocore.auth's namespace, so the clock botocore's own signer reads is ours.
        auth: Any = botocore.auth
        request.context["timestamp"] = auth.get_current_datetime().strftime(auth.SIGV4_TIMESTAMP)
        signer: Any = self  # private steps of SigV4Auth, untyped in botocore-stubs
        signer._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signer._inject_signature_to_request(request, self.signature(string_to_sign, request))


@attrs.frozen
class PreparedRequest:
    """A signed request ready for :class:`quotaguard._http.HTTPClient`. Its repr hides headers
    (``Authorization``, ``X-Amz-Security-Token``)."""

    operation: str
    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


def prepare(
    name: str,
    params: Mapping[str, Any],
    *,
    endpoint: str,
    region: str,
    credentials: botocore.credentials.ReadOnlyCredentials,
) -> PreparedRequest:
    """Serialize ``params`` for operation ``name`` with botocore's model and sign with SigV4."""
    op = operation(name)
    wire = _serializer().serialize_to_request(dict(params), op)
    url = endpoint + wire["url_path"]
    if wire["query_string"]:
        url += "?" + urlencode(wire["query_string"], doseq=True)
    body = wire["body"] or b""
    request = AWSRequest(method=wire["method"], url=url, headers=dict(wire["headers"]), data=body)
    _QuietSigV4Auth(credentials, "braket", region).add_auth(request)
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        raw: object = value  # botocore may hold str or bytes values
        headers[key] = raw.decode() if isinstance(raw, bytes) else str(raw)
    return PreparedRequest(name, wire["method"], url, headers, body)


_BY_CODE: Mapping[str, type[ProviderError]] = {
    "ValidationException": BadRequest,
    "AccessDeniedException": PermissionDenied,
    "ThrottlingException": Throttled,
    "ResourceNotFoundException": NotFound,
    "DeviceRetiredException": DeviceUnavailable,
    "DeviceOfflineException": DeviceUnavailable,
    "ServiceQuotaExceededException": ServiceQuotaExceeded,
    "ConflictException": Conflict,
    "InternalServiceException": ProviderUnavailable,
    "UnrecognizedClientException": AuthenticationError,
    "InvalidSignatureException": AuthenticationError,
    "IncompleteSignatureException": AuthenticationError,
    "MissingAuthenticationTokenException": AuthenticationError,
    "ExpiredTokenException": AuthenticationError,
}

_BY_STATUS: Mapping[int, type[ProviderError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    410: DeviceUnavailable,
    424: DeviceUnavailable,
    429: Throttled,
}


def _error_code(headers: Mapping[str, str], data: Mapping[str, Any]) -> str | None:
    raw = headers.get("x-amzn-ErrorType") or headers.get("X-Amzn-Errortype")
    if raw is None:
        for key, value in headers.items():
            if key.lower() == "x-amzn-errortype":
                raw = value
                break
    raw = raw or data.get("__type") or data.get("code") or data.get("Code")
    if not isinstance(raw, str) or not raw:
        return None
    # "ValidationException:http://internal.amazon.com/..." or "aws.protocol#ValidationException"
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]


def decode_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    device_arn: str | None = None,
    requested: Decimal | None = None,
) -> ProviderError | BudgetExceeded:
    """Map a Braket error response to the typed quotaguard error (not raised: returned)."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = _error_code(headers, data)
    message = data.get("message") or data.get("Message") or ""
    if not isinstance(message, str):
        message = str(message)
    trace = headers.get("x-amzn-RequestId") or headers.get("X-Amzn-Requestid")
    if code == "ValidationException" and message.startswith(OVER_LIMIT_PREFIX):
        key = f"braket:{device_arn}" if device_arn else None
        violation = Violation(
            rule=RULE_SERVER,
            message=f"Braket refused the task: {message}",
            budget=key,
            requested=requested,
            unit=Unit.USD,
        )
        return BudgetExceeded(Decision.reject([violation]), source="server")
    if "signature" in message.lower() and code in (None, "InvalidSignatureException"):
        cls: type[ProviderError] = AuthenticationError
    elif code is not None and code in _BY_CODE:
        cls = _BY_CODE[code]
    elif status >= 500:
        cls = ProviderUnavailable
    else:
        cls = _BY_STATUS.get(status, ProviderError)
    text = f"{code or 'error'}: {message}" if message else (code or f"HTTP {status}")
    return cls(text, provider=PROVIDER, status=status, code=code, trace=trace)
