"""Pure Braket protocol pieces: build a request, read the answer (no I/O, no botocore).

``build_*`` validate inputs (an error names the field) and return a :class:`Request`, which
:mod:`quotaguard.braket.signing` serializes and signs; ``decipher_*`` read a
:class:`~quotaguard._wire.Response`: a success body goes straight from JSON into the attrs
models (cattrs; botocore's response parser is the slowest step of a call, ~244 µs a response),
an error becomes the typed error named by ``x-amzn-errortype`` or the body's ``__type``/``code``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from quotaguard._wire import Response
from quotaguard.braket.checks import (
    check_amount,
    check_reservation_arn,
    check_shots,
    check_spending_limit_arn,
    check_task_arn,
    parse_device_arn,
)
from quotaguard.braket.models import RESERVATION_ASSOCIATION, SpendingLimit, TimePeriod, structure
from quotaguard.braket.rules import (
    RULE_SERVER,
    budget_key,
    check_create,
    check_time_period,
    check_update,
)
from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Decision, Violation
from quotaguard.errors import (
    AuthenticationError,
    BadRequest,
    BudgetExceeded,
    Conflict,
    DeviceUnavailable,
    InvalidInput,
    MalformedPayload,
    NotFound,
    PermissionDenied,
    ProviderError,
    ProviderUnavailable,
    ServiceQuotaExceeded,
    Throttled,
)

__all__ = [
    "OVER_LIMIT_PREFIX",
    "PAGE_SIZE",
    "PROVIDER",
    "RULE_SERVER",
    "Request",
    "build_cancel_quantum_task",
    "build_create_quantum_task",
    "build_create_spending_limit",
    "build_delete_spending_limit",
    "build_get_device",
    "build_get_quantum_task",
    "build_search_quantum_tasks",
    "build_search_spending_limits",
    "build_update_spending_limit",
    "check_associations",
    "check_tags",
    "decipher",
    "decipher_as",
    "decipher_error",
    "decipher_field",
    "decipher_spending_limits",
    "decipher_tagged_tasks",
    "search_groups",
]

T = TypeVar("T")
PROVIDER = "braket"
#: Braket's own over-limit rejection starts with this (HTTP 400 ValidationException).
OVER_LIMIT_PREFIX = "Attempted to spend over the spending limit"
PAGE_SIZE = 100  # the model's maximum maxResults
_FILTER_VALUES = 10  # the model's maximum values in one search filter


@attrs.frozen
class Request:
    """One Braket call, validated, before signing: the operation and its botocore input."""

    operation: str
    params: Mapping[str, Any]
    #: For reading Braket's own over-limit refusal of a task: whose budget, how much.
    device_arn: str | None = None
    requested: Decimal | None = None


# -- building --------------------------------------------------------------------------------


def _token(value: object, field: str = "client_token") -> str:
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise InvalidInput(field, "client token must be a string of 1-64 characters")
    return value


def check_tags(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput("tags", "tags must be a mapping of str to str")
    return dict(value)


def _period(value: TimePeriod) -> dict[str, Any]:
    return {"startAt": value.start_at, "endAt": value.end_at}


def _str_len(value: object, field: str, low: int, high: int) -> str:
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise InvalidInput(field, f"must be a string of {low}-{high} characters")
    return value


def _json_text(value: object, field: str) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        text = json.dumps(value)
    else:
        raise InvalidInput(field, f"must be a JSON string or a dict, got {type(value).__name__}")
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidInput(field, f"is not valid JSON: {exc}") from None
    return text


def build_create_spending_limit(
    device_arn: object,
    amount: object,
    time_period: object = None,
    tags: object = None,
    client_token: object = None,
) -> Request:
    arn, value, period = check_create(device_arn, amount, time_period)
    params: dict[str, Any] = {
        "clientToken": _token(client_token),
        "deviceArn": arn,
        "spendingLimit": format(value, "f"),
    }
    if period is not None:
        params["timePeriod"] = _period(period)
    if (tag_map := check_tags(tags)) is not None:
        params["tags"] = tag_map
    return Request("CreateSpendingLimit", params)


def build_update_spending_limit(
    arn: object,
    amount: object = None,
    time_period: object = None,
    *,
    current: SpendingLimit | None = None,
    client_token: object = None,
) -> Request:
    """With ``current``, a new limit below its ``total_spend + queued_spend`` is refused here,
    as Braket would refuse it."""
    limit_arn = check_spending_limit_arn(arn, "arn")
    period = check_time_period(time_period)
    if amount is None and period is None:
        raise InvalidInput("amount", "give a new amount, a new time_period, or both")
    params: dict[str, Any] = {"spendingLimitArn": limit_arn, "clientToken": _token(client_token)}
    if amount is not None:
        value = check_amount(amount)
        check_update(value, current)
        params["spendingLimit"] = format(value, "f")
    if period is not None:
        params["timePeriod"] = _period(period)
    return Request("UpdateSpendingLimit", params)


def build_delete_spending_limit(arn: object) -> Request:
    return Request(
        "DeleteSpendingLimit", {"spendingLimitArn": check_spending_limit_arn(arn, "arn")}
    )


def search_groups(device_arns: Sequence[str] | None, page_size: int) -> list[list[str] | None]:
    """The device-ARN filter of each search (``None``: every limit), checked once."""
    if not 1 <= page_size <= PAGE_SIZE:
        raise InvalidInput("page_size", f"must be 1-{PAGE_SIZE}")
    if device_arns is None:
        return [None]
    if isinstance(device_arns, str):
        raise InvalidInput("device_arns", "pass a list of device ARNs, not one string")
    arns = [parse_device_arn(a, f"device_arns[{i}]").arn for i, a in enumerate(device_arns)]
    return [arns[i : i + _FILTER_VALUES] for i in range(0, len(arns), _FILTER_VALUES)]


def build_search_spending_limits(
    group: list[str] | None, page_size: int, next_token: str | None = None
) -> Request:
    """One page of a search; ``group`` and ``page_size`` as :func:`search_groups` checked."""
    params: dict[str, Any] = {"maxResults": page_size}
    if group is not None:
        params["filters"] = [{"name": "deviceArn", "operator": "EQUAL", "values": group}]
    if next_token:
        params["nextToken"] = next_token
    return Request("SearchSpendingLimits", params)


def build_get_device(arn: object) -> Request:
    return Request("GetDevice", {"deviceArn": parse_device_arn(arn, "arn").arn})


def build_get_quantum_task(arn: object) -> Request:
    return Request("GetQuantumTask", {"quantumTaskArn": check_task_arn(arn, "arn")})


def build_cancel_quantum_task(arn: object, client_token: object = None) -> Request:
    task_arn = check_task_arn(arn, "arn")
    return Request(
        "CancelQuantumTask", {"quantumTaskArn": task_arn, "clientToken": _token(client_token)}
    )


def build_create_quantum_task(
    device_arn: object,
    action: object,
    shots: object,
    output_s3_bucket: object,
    output_s3_key_prefix: object,
    device_parameters: object = None,
    client_token: object = None,
    tags: object = None,
    job_token: object = None,
    *,
    associations: object = None,
    estimate: Decimal | None = None,
) -> Request:
    """``estimate`` becomes the requested amount if Braket refuses the task as over its limit;
    ``associations`` are ``[{"arn": ..., "type": "RESERVATION_TIME_WINDOW_ARN"}]`` (a task run
    under that Braket Direct reservation), as the live API takes them."""
    ref = parse_device_arn(device_arn)
    params: dict[str, Any] = {
        "clientToken": _token(client_token),
        "deviceArn": ref.arn,
        "shots": check_shots(shots, qpu=ref.is_qpu),
        "outputS3Bucket": _str_len(output_s3_bucket, "output_s3_bucket", 3, 63),
        "outputS3KeyPrefix": _str_len(output_s3_key_prefix, "output_s3_key_prefix", 1, 1024),
        "action": _json_text(action, "action"),
    }
    if device_parameters is not None:
        params["deviceParameters"] = _json_text(device_parameters, "device_parameters")
    if (tag_map := check_tags(tags)) is not None:
        params["tags"] = tag_map
    if job_token is not None:
        params["jobToken"] = _str_len(job_token, "job_token", 1, 128)
    if associations is not None:
        params["associations"] = check_associations(associations)
    return Request("CreateQuantumTask", params, device_arn=ref.arn, requested=estimate)


def check_associations(value: object) -> list[dict[str, str]]:
    """``associations`` as the model takes them: a list of ``{"arn", "type"}``."""
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise InvalidInput("associations", "must be a list of {'arn': ..., 'type': ...}")
    out = []
    for i, item in enumerate(value):
        arn = item.get("arn") if isinstance(item, Mapping) else None
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind != RESERVATION_ASSOCIATION:
            raise InvalidInput(f"associations[{i}].type", f"must be {RESERVATION_ASSOCIATION!r}")
        # The one association type is a reservation's time window: its ARN is a reservation's.
        out.append({"arn": check_reservation_arn(arn, f"associations[{i}].arn"), "type": kind})
    return out


def build_search_quantum_tasks(
    device_arns: Sequence[str] | None,
    created_after: datetime | None,
    next_token: str | None = None,
    page_size: int = PAGE_SIZE,
) -> Request:
    """One page of ``SearchQuantumTasks``: tasks on these devices (at most 10) created at or
    after ``created_after`` (ISO 8601 in UTC)."""
    filters: list[dict[str, Any]] = []
    if device_arns:
        group = search_groups(device_arns, page_size)
        if len(group) != 1:
            raise InvalidInput("device_arns", f"at most {_FILTER_VALUES} devices per search")
        filters.append({"name": "deviceArn", "operator": "EQUAL", "values": group[0]})
    if created_after is not None:
        if created_after.tzinfo is None:
            raise InvalidInput("created_after", "must be timezone-aware")
        when = created_after.astimezone(UTC).isoformat().replace("+00:00", "Z")
        filters.append({"name": "createdAt", "operator": "GTE", "values": [when]})
    params: dict[str, Any] = {"filters": filters, "maxResults": page_size}
    if next_token:
        params["nextToken"] = next_token
    return Request("SearchQuantumTasks", params)


# -- deciphering -----------------------------------------------------------------------------

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
    raw = headers.get("x-amzn-errortype") or data.get("__type") or data.get("code")
    raw = raw or data.get("Code")
    if not isinstance(raw, str) or not raw:
        return None
    # "ValidationException:http://internal.amazon.com/..." or "aws.protocol#ValidationException"
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]


def decipher_error(request: Request, response: Response) -> ProviderError | BudgetExceeded:
    """The typed error of a non-2xx answer to ``request`` (returned, not raised)."""
    try:
        data = json.loads(response.body) if response.body else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    status = response.status
    code = _error_code(response.headers, data)
    message = data.get("message") or data.get("Message") or ""
    if not isinstance(message, str):
        message = str(message)
    trace = response.headers.get("x-amzn-requestid")
    if code == "ValidationException" and message.startswith(OVER_LIMIT_PREFIX):
        violation = Violation(
            rule=RULE_SERVER,
            message=f"Braket refused the task: {message}",
            budget=budget_key(request.device_arn) if request.device_arn else None,
            requested=request.requested,
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


def decipher(request: Request, response: Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer to ``request``, or raise its typed error."""
    if not response.ok:
        raise decipher_error(request, response)
    try:
        data = json.loads(response.body) if response.body else {}
    except ValueError:
        raise MalformedPayload(
            "$", f"{request.operation} answered with non-JSON", provider=PROVIDER
        ) from None
    if not isinstance(data, dict):
        raise MalformedPayload(
            "$", f"{request.operation} answered with a non-object", provider=PROVIDER
        )
    return data


def decipher_as(request: Request, response: Response, cls: type[T]) -> T:
    """A 2xx answer structured into ``cls`` (``Device``, ``QuantumTask``)."""
    return structure(decipher(request, response), cls)


def decipher_field(request: Request, response: Response, key: str) -> str:
    """One string field of a 2xx answer (an ARN, a cancellation status)."""
    value = decipher(request, response).get(key)
    if not isinstance(value, str):
        raise MalformedPayload(f"$.{key}", "expected str", provider=PROVIDER)
    return value


def decipher_spending_limits(
    request: Request, response: Response
) -> tuple[list[SpendingLimit], str | None]:
    """One search page: its limits and the ``nextToken`` of the next page (``None``: done)."""
    data = decipher(request, response)
    items = data.get("spendingLimits")
    if not isinstance(items, list):
        raise MalformedPayload("$.spendingLimits", "expected a list", provider=PROVIDER)
    limits = structure(items, list[SpendingLimit], path="$.spendingLimits")
    return limits, data.get("nextToken") or None


def decipher_tagged_tasks(
    request: Request, response: Response, key: str, value: str
) -> tuple[list[str], str | None]:
    """One search page: the ARNs of its tasks tagged ``key=value`` (checked here, not trusted
    to a filter Braket does not have), and the ``nextToken`` of the next page."""
    data = decipher(request, response)
    items = data.get("quantumTasks")
    if not isinstance(items, list):
        raise MalformedPayload("$.quantumTasks", "expected a list", provider=PROVIDER)
    found = []
    for i, item in enumerate(items):
        arn = item.get("quantumTaskArn") if isinstance(item, dict) else None
        if not isinstance(arn, str):
            raise MalformedPayload(
                f"$.quantumTasks[{i}].quantumTaskArn", "expected str", provider=PROVIDER
            )
        tags = item.get("tags")
        if isinstance(tags, dict) and tags.get(key) == value:
            found.append(arn)
    return found, data.get("nextToken") or None
