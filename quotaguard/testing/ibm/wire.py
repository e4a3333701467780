"""How the emulator's IBM half speaks: route prefix, header checks, JSON bodies and errors."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

__all__ = [
    "ACCOUNT_ID",
    "API_VERSION",
    "INT32_MAX",
    "PREFIX",
    "QPU_CHARGE_TIME_SINCE",
    "Reject",
    "error_response",
    "json_default",
    "json_response",
    "read_json",
    "read_json_object",
]

INT32_MAX = 2**31 - 1
#: Job metrics use the current field name from this API version on (see DESIGN.md).
QPU_CHARGE_TIME_SINCE = "2026-03-01"
PREFIX = "/{prefix:(?:experimental/)?api}/v1"
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ACCOUNT_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_MORE_INFO = "https://quantum.cloud.ibm.com/docs/api/qiskit-runtime-rest"


def json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(type(value).__name__)


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, default=json_default).encode(),
        content_type="application/json",
    )


class Reject(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(exc: Reject, *, generic: bool) -> web.Response:
    """An ``ErrorContainer`` body, or ``GenericErrorDto`` where the spec gives that instead."""
    trace = str(uuid.uuid4())
    if generic:
        item: dict[str, Any] = {
            "code": exc.status * 10,
            "message": exc.message,
            "solution": "Check the request and its credentials",
            "more_info": _MORE_INFO,
        }
    else:
        item = {"code": exc.code, "message": exc.message, "more_info": _MORE_INFO}
    return json_response({"errors": [item], "trace": trace}, exc.status)


async def read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        raise Reject(400, "invalid_request", "The body is not JSON") from None


async def read_json_object(request: web.Request) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise Reject(400, "invalid_request", "The body must be a JSON object")
    return data
