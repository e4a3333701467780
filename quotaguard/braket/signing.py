"""SigV4 for Braket: serialize a built request with botocore's model, then sign it (no I/O).

botocore supplies the ``braket`` service model (2019-09-01), the rest-json serializer and the
SigV4 signer; a botocore *client* is skipped because it runs its event system and endpoint
rules on every call. Credentials come from the caller (the client looks them up).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
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

from quotaguard.braket.sansio import Request

__all__ = ["SignedRequest", "operation", "service_model", "sign"]


@attrs.frozen
class SignedRequest:
    """A signed request, ready to send byte for byte. Its repr hides headers
    (``Authorization``, ``X-Amz-Security-Token``) and the body."""

    operation: str
    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


@functools.cache
def service_model() -> ServiceModel:
    """botocore's ``braket`` model, loaded once per process (loading costs milliseconds)."""
    return botocore.session.get_session().get_service_model("braket")


@functools.cache
def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


@functools.cache
def _serializer() -> Any:
    # Inputs are validated by the build_* functions, with errors naming the field.
    return botocore.serialize.create_serializer("rest-json", include_validation=False)


class _QuietSigV4Auth(botocore.auth.SigV4Auth):
    """botocore's SigV4, minus its DEBUG logging: botocore logs the canonical request, which
    carries ``x-amz-security-token``. Same steps, same bytes, nothing logged."""

    def add_auth(self, request: AWSRequest) -> None:
        if self.credentials is None:  # pragma: no cover - sign() always passes credentials
            raise botocore.exceptions.NoCredentialsError()
        # Through botocore.auth's namespace, so the clock botocore's own signer reads is ours.
        auth: Any = botocore.auth
        request.context["timestamp"] = auth.get_current_datetime().strftime(auth.SIGV4_TIMESTAMP)
        signer: Any = self  # private steps of SigV4Auth, untyped in botocore-stubs
        signer._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signer._inject_signature_to_request(request, self.signature(string_to_sign, request))


def sign(
    request: Request,
    *,
    endpoint: str,
    region: str,
    credentials: botocore.credentials.ReadOnlyCredentials,
) -> SignedRequest:
    """Serialize ``request`` with botocore's model and sign it with SigV4 for ``endpoint``."""
    wire = _serializer().serialize_to_request(dict(request.params), operation(request.operation))
    url = endpoint + wire["url_path"]
    if wire["query_string"]:
        url += "?" + urlencode(wire["query_string"], doseq=True)
    body = wire["body"] or b""
    aws = AWSRequest(method=wire["method"], url=url, headers=dict(wire["headers"]), data=body)
    _QuietSigV4Auth(credentials, "braket", region).add_auth(aws)
    headers: dict[str, str] = {}
    for key, value in aws.headers.items():
        raw: object = value  # botocore may hold str or bytes values
        headers[key] = raw.decode() if isinstance(raw, bytes) else str(raw)
    return SignedRequest(request.operation, wire["method"], url, headers, body)
