"""SigV4 for Braket: serialize a built request with botocore's model, then sign it (no I/O).

botocore supplies the ``braket`` service model (2019-09-01), the rest-json serializer and the
SigV4 signer; a botocore *client* is skipped because it runs its event system and endpoint
rules on every call. Credentials come from the caller (the client looks them up). Signing
goes through ``SigV4Auth.add_auth`` (public), with botocore's DEBUG log of it held back.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import attrs
import botocore.auth
import botocore.credentials
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


class _Quiet(logging.Filter):
    """Drops ``botocore.auth``'s records while this thread signs for us: botocore logs the
    canonical request at DEBUG, which carries ``x-amz-security-token``. Records of other
    threads (a boto3 client signing elsewhere) pass, as does everything outside our call."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "on", False)


_quiet = _Quiet()
# botocore.auth's logger (botocore logs there by module name); tests/braket/test_sigv4.py fails
# if a botocore release logs the canonical request anywhere else.
_auth_log = logging.getLogger(botocore.auth.__name__)


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
    _auth_log.addFilter(_quiet)  # a no-op once there; back if logging was reconfigured
    _quiet.local.on = True  # sync from here to the end: nothing else runs on this thread
    try:
        botocore.auth.SigV4Auth(credentials, "braket", region).add_auth(aws)
    finally:
        _quiet.local.on = False
    headers: dict[str, str] = {}
    for key, value in aws.headers.items():
        raw: object = value  # botocore may hold str or bytes values
        headers[key] = raw.decode() if isinstance(raw, bytes) else str(raw)
    return SignedRequest(request.operation, wire["method"], url, headers, body)
