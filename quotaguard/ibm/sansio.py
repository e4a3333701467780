"""Pure request building and response deciphering for the IBM APIs (no I/O, gidgethub style).

``build_*`` validate inputs against the spec's patterns and bounds and return a
:class:`Request`; ``decipher_*`` turn a :class:`~quotaguard._wire.Response` into JSON data, a
model or a typed error (``ErrorContainer`` and ``GenericErrorDto`` bodies keep their ``trace``
and each error's code/message/more_info). The I/O lives in :mod:`quotaguard.ibm.client` and
:mod:`quotaguard.ibm.auth`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode

import attrs

from quotaguard._wire import Response
from quotaguard.errors import (
    AuthenticationError,
    BadRequest,
    Conflict,
    InvalidInput,
    MalformedPayload,
    NotFound,
    PermissionDenied,
    ProviderError,
    ProviderUnavailable,
    Throttled,
    UsageExceedsLimit,
)
from quotaguard.ibm.models import IAMToken, Job, structure

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_CATALOG_URL",
    "DEFAULT_IAM_URL",
    "IAM_GRANT_TYPE",
    "INT32_MAX",
    "PROVIDER",
    "REGIONS",
    "Request",
    "account_from_crn",
    "api_headers",
    "build_create_session",
    "build_get_account",
    "build_get_catalog_entry",
    "build_get_instance",
    "build_get_instance_configuration",
    "build_get_job",
    "build_get_job_metrics",
    "build_get_session",
    "build_get_usage",
    "build_iam_token",
    "build_list_jobs",
    "build_run_job",
    "build_update_instance_configuration",
    "check_api_version",
    "check_crn",
    "decipher",
    "decipher_as",
    "decipher_id",
    "decipher_job",
    "decipher_job_ids",
    "decipher_token",
    "error_for",
    "error_trace",
    "load_json",
    "region_from_crn",
]

T = TypeVar("T")

PROVIDER: Final = "ibm"
#: What the newest supported qiskit-ibm-runtime sends (0.51: ``RestAdapterBase._HEADER_API_VERSION``
#: in ``api/rest/base.py``); tests/ibm/test_api_version.py compares it with the installed SDK.
DEFAULT_API_VERSION: Final = "2026-04-15"
DEFAULT_IAM_URL: Final = "https://iam.cloud.ibm.com"
#: IBM Cloud's Global Catalog, where qiskit-ibm-runtime 0.51 reads a plan's name
#: (``accounts/utils.py`` ``get_global_catalog_api_url``).
DEFAULT_CATALOG_URL: Final = "https://globalcatalog.cloud.ibm.com/api/v1"
IAM_GRANT_TYPE: Final = "urn:ibm:params:oauth:grant-type:apikey"
INT32_MAX: Final = 2**31 - 1
REGIONS: Final[Mapping[str, str]] = {
    "us-east": "https://quantum.cloud.ibm.com/api",
    "eu-de": "https://eu-de.quantum.cloud.ibm.com/api",
}

# Used with fullmatch only: "$" would also match before a trailing newline.
_ACCOUNT_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_RESOURCE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


@attrs.frozen
class Request:
    """One API call, ready to send: the client adds the base URL and headers."""

    operation: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = None
    #: Safe to repeat after an ambiguous failure (every GET).
    idempotent: bool = True
    #: For non-idempotent calls: statuses that mean "not acted on", so a retry is safe.
    safe_statuses: frozenset[int] = frozenset()


def check_crn(crn: object, field: str = "service_crn") -> str:
    if not isinstance(crn, str) or not crn.startswith("crn:") or not _PRINTABLE.fullmatch(crn):
        raise InvalidInput(
            field,
            "expected the instance's IBM Cloud CRN (crn:v1:bluemix:public:quantum-computing:"
            "<region>:a/<account>:<instance>::): printable ASCII, no spaces or control "
            "characters such as a trailing newline",
        )
    if len(crn) > 512:
        raise InvalidInput(field, "a CRN is at most 512 characters")
    return crn


def region_from_crn(crn: str) -> str | None:
    """The CRN's location segment (``us-east``, ``eu-de``), as qiskit-ibm-runtime reads it."""
    parts = crn.split(":")
    return parts[5] or None if len(parts) > 5 else None


def account_from_crn(crn: str) -> str | None:
    """The CRN's account id (its ``a/<account>`` scope, without the prefix), for
    ``GET /v1/accounts/{id}``; None when the CRN names no account."""
    parts = crn.split(":")
    scope = parts[6] if len(parts) > 6 else ""
    account = scope.removeprefix("a/") if scope.startswith("a/") else ""
    return account if _ACCOUNT_ID.fullmatch(account) else None


def check_api_version(value: object) -> str:
    if not isinstance(value, str) or not _API_VERSION.fullmatch(value):
        raise InvalidInput(
            "api_version", f"expected a date like {DEFAULT_API_VERSION}, got {value!r}"
        )
    return value


def _resource_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not _RESOURCE_ID.fullmatch(value):
        raise InvalidInput(
            field, "expected 1-128 characters of letters, digits, '.', '_', ':' or '-'"
        )
    return value


def api_headers(token: str, crn: str, api_version: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Service-CRN": crn,
        "IBM-API-Version": api_version,
        "Accept": "application/json",
    }


def build_iam_token(api_key: str) -> tuple[dict[str, str], dict[str, str]]:
    """Form fields and headers of the IAM API-key exchange (``POST /identity/token``)."""
    form = {"grant_type": IAM_GRANT_TYPE, "apikey": api_key}
    return form, {"Accept": "application/json"}


def build_get_instance() -> Request:
    return Request("get_instance", "GET", "/v1/instance")


def build_get_instance_configuration() -> Request:
    return Request("get_instance_configuration", "GET", "/v1/instances/configuration")


def build_update_instance_configuration(instance_limit: object) -> Request:
    """``None`` resets (removes) the limit; otherwise an int in 1..2³¹−1 seconds."""
    if instance_limit is not None and (
        isinstance(instance_limit, bool)
        or not isinstance(instance_limit, int)
        or not 1 <= instance_limit <= INT32_MAX
    ):
        raise InvalidInput(
            "instance_limit",
            f"expected whole seconds in 1..{INT32_MAX}, or None to remove the limit; "
            f"got {instance_limit!r}",
        )
    body = json.dumps({"instance_limit": instance_limit}).encode()
    # A PUT of an absolute value, but a retry after an ambiguous failure could reorder it
    # against a concurrent change: retried only on 429, which the server refused unseen.
    return Request(
        "update_instance_configuration",
        "PUT",
        "/v1/instances/configuration",
        body,
        "application/json",
        idempotent=False,
        safe_statuses=frozenset({429}),
    )


def build_get_account(account_id: object, plan_id: object = None) -> Request:
    if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        raise InvalidInput(
            "account_id",
            "expected 1-64 letters, digits, '-' or '_' (the account id without the 'a/' prefix)",
        )
    path = f"/v1/accounts/{account_id}"
    if plan_id is not None:
        if not isinstance(plan_id, str) or not 1 <= len(plan_id) <= 64 or not plan_id.isprintable():
            raise InvalidInput(
                "plan_id", "expected 1-64 printable characters (no control characters), or None"
            )
        path += "?" + urlencode({"plan_id": plan_id})
    return Request("get_account", "GET", path)


def build_get_catalog_entry(entry_id: object) -> Request:
    """A Global Catalog entry, e.g. a plan's by its ``plan_id`` (sent to the catalog's URL)."""
    entry = quote(_resource_id(entry_id, "plan_id"), safe="")
    return Request("get_catalog_entry", "GET", f"/{entry}")


def build_get_usage() -> Request:
    return Request("get_usage", "GET", "/v1/instances/usage")


def build_get_job(job_id: object) -> Request:
    job = quote(_resource_id(job_id, "job_id"), safe="")
    return Request("get_job", "GET", f"/v1/jobs/{job}")


def build_get_job_metrics(job_id: object) -> Request:
    job = quote(_resource_id(job_id, "job_id"), safe="")
    return Request("get_job_metrics", "GET", f"/v1/jobs/{job}/metrics")


def build_run_job(
    program_id: object,
    backend: object,
    params: object,
    max_execution_time: object = None,
    session_id: object = None,
    tags: object = None,
) -> Request:
    """``POST /v1/jobs`` as qiskit-ibm-runtime sends it (``cost`` is max_execution_time,
    ``tags`` its ``job_tags``)."""
    if not isinstance(params, dict):
        raise InvalidInput("params", "must be a dict of program inputs")
    body: dict[str, Any] = {
        "program_id": _resource_id(program_id, "program_id"),
        "backend": _resource_id(backend, "backend"),
        "params": params,
    }
    if max_execution_time is not None:
        if (
            isinstance(max_execution_time, bool)
            or not isinstance(max_execution_time, int)
            or not (1 <= max_execution_time <= 2**31 - 1)
        ):
            raise InvalidInput("max_execution_time", "must be an int from 1 to 2^31-1 seconds")
        body["cost"] = max_execution_time
    if session_id is not None:
        body["session_id"] = _resource_id(session_id, "session_id")
    if tags:
        body["tags"] = _tags(tags)
    # Not idempotent: the API takes no token, so a lost reply is never retried blindly.
    return Request(
        "run_job",
        "POST",
        "/v1/jobs",
        json.dumps(body).encode(),
        "application/json",
        idempotent=False,
        safe_statuses=frozenset({429}),
    )


def _tags(value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidInput("tags", "must be a list of job tags (strings)")
    if not all(isinstance(t, str) and t.strip() and t.isprintable() for t in value):
        raise InvalidInput("tags", "every job tag must be a non-empty printable string")
    return list(value)


def build_list_jobs(tags: object, *, limit: int = 20) -> Request:
    """``GET /v1/jobs?tags=...``: jobs carrying every tag, newest first, without their params
    (as qiskit-ibm-runtime's ``jobs_get`` asks)."""
    query = [("tags", t) for t in _tags(tags)]
    query += [("limit", str(limit)), ("exclude_params", "true")]
    return Request("list_jobs", "GET", f"/v1/jobs?{urlencode(query)}")


def build_create_session(
    backend: object, mode: object = "dedicated", max_ttl: object = None
) -> Request:
    if mode not in ("dedicated", "batch"):
        raise InvalidInput("mode", f"must be 'dedicated' or 'batch', got {mode!r}")
    body: dict[str, Any] = {"backend": _resource_id(backend, "backend"), "mode": mode}
    if max_ttl is not None:
        if isinstance(max_ttl, bool) or not isinstance(max_ttl, int) or max_ttl < 1:
            raise InvalidInput("max_ttl", "must be a positive int of seconds")
        body["max_ttl"] = max_ttl
    return Request(
        "create_session",
        "POST",
        "/v1/sessions",
        json.dumps(body).encode(),
        "application/json",
        idempotent=False,
        safe_statuses=frozenset({429}),
    )


def build_get_session(session_id: object) -> Request:
    session = quote(_resource_id(session_id, "session_id"), safe="")
    return Request("get_session", "GET", f"/v1/sessions/{session}")


def load_json(body: bytes, path: str = "$") -> Any:
    """JSON with exact decimals; a body that is not JSON names the root as the bad field."""
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload(path, "response body is not valid JSON", provider=PROVIDER) from None


_STATUS_ERRORS: Final[Mapping[int, type[ProviderError]]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    429: Throttled,
}


def _error_items(data: object) -> tuple[str | None, tuple[dict[str, str], ...]]:
    """(trace, errors) from an ErrorContainer, a GenericErrorDto or an IAM error body."""
    if not isinstance(data, dict):
        return None, ()
    trace = data.get("trace")
    items: list[dict[str, str]] = []
    errors = data.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                items.append({k: str(v) for k, v in item.items() if v is not None})
    if "errorCode" in data or "errorMessage" in data:  # IAM's own error shape
        items.append(
            {"code": str(data.get("errorCode", "")), "message": str(data.get("errorMessage", ""))}
        )
        context = data.get("context")
        if trace is None and isinstance(context, dict):
            trace = context.get("requestId")
    return (str(trace) if trace is not None else None), tuple(items)


def _error_body(response: Response) -> object:
    try:
        return json.loads(response.body) if response.body else None
    except (ValueError, UnicodeDecodeError):
        return None


def _trace(trace: str | None, response: Response) -> str | None:
    headers = response.headers
    return trace or headers.get("x-global-transaction-id") or headers.get("x-request-id")


def error_trace(response: Response) -> str | None:
    """The trace id IBM gives an error answer (body ``trace``, IAM's ``requestId``, or the
    transaction header), as :func:`error_for` puts it on the error; for the HTTP span."""
    return _trace(_error_items(_error_body(response))[0], response)


def error_for(
    operation: str, response: Response, kind: type[ProviderError] | None = None
) -> ProviderError:
    """The typed error for a non-2xx answer. Messages come from the body, never our headers."""
    trace, items = _error_items(_error_body(response))
    trace = _trace(trace, response)
    code = items[0].get("code") if items else None
    detail = items[0].get("message") if items else None
    message = f"{operation} failed" + (f": {detail}" if detail else "")
    status = response.status
    cls: type[ProviderError]
    if kind is not None:
        cls = kind
    elif status == 409 and operation == "update_instance_configuration":
        cls = UsageExceedsLimit
    elif status >= 500:
        cls = ProviderUnavailable
    else:
        cls = _STATUS_ERRORS.get(status, ProviderError)
    return cls(message, provider=PROVIDER, status=status, code=code, trace=trace, errors=items)


def _data(operation: str, response: Response) -> Any:
    if response.ok:
        if response.status == 204 or not response.body:
            return None
        return load_json(response.body)
    raise error_for(operation, response)


def decipher(request: Request, response: Response) -> Any:
    """The JSON data of a 2xx answer to ``request`` (``None`` for 204), or raise the error."""
    return _data(request.operation, response)


def decipher_as(request: Request, response: Response, model: type[T]) -> T:
    """A 2xx answer structured into ``model``; a wrong shape names the wire field."""
    return structure(_data(request.operation, response), model)


def decipher_job(request: Request, response: Response) -> Job:
    data = _data(request.operation, response)
    if isinstance(data, dict):
        data = _job_fields(data)
    return structure(data, Job)


def _job_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The job reply's status, reason and reason code, wherever the reply puts them.

    The live reply nests them under ``state`` (qiskit-ibm-runtime 0.51 reads ``state.status``,
    ``state.reason`` and ``state.reasonCode`` or ``state.reason_code`` in
    ``RuntimeJobV2._set_status``); older payloads have only ``state``, some a top-level
    ``status``, which wins. A status text such as "Cancelled - Ran too long" keeps its reason.
    """
    state = data.get("state")
    nested: dict[str, Any] = {}
    if isinstance(state, dict):
        code = state.get("reason_code", state.get("reasonCode"))
        nested = {"status": state.get("status"), "reason": state.get("reason"), "reason_code": code}
    merged = {**data}
    for key, value in nested.items():
        if merged.get(key) is None and value is not None:
            merged[key] = value
    status = merged.get("status")
    if isinstance(status, str) and " - " in status and merged.get("reason") is None:
        merged["reason"] = status.split(" - ", 1)[1].strip()
    return merged


def decipher_id(request: Request, response: Response) -> str:
    """The ``id`` of what a POST created (a job, a session)."""
    data = _data(request.operation, response)
    value = data.get("id") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise MalformedPayload("$.id", "expected a non-empty string id", provider=PROVIDER)
    return value


def decipher_job_ids(request: Request, response: Response, tag: str) -> list[str]:
    """The ids of the listed jobs that carry ``tag`` (``{"jobs": [...], "count": n}``); the
    filter is checked here too, rather than trusted."""
    data = _data(request.operation, response)
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise MalformedPayload("$.jobs", "expected a list of jobs", provider=PROVIDER)
    found = []
    for i, job in enumerate(jobs):
        if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not job["id"]:
            raise MalformedPayload(f"$.jobs[{i}].id", "expected a job id", provider=PROVIDER)
        tags = job.get("tags")
        if isinstance(tags, list) and tag in tags:
            found.append(job["id"])
    return found


def decipher_token(response: Response) -> IAMToken:
    """IAM's answer: a token, or :class:`AuthenticationError` (IAM says 400 for a bad key)."""
    operation = "IAM token exchange"
    if response.status in (400, 401, 403):
        raise error_for(operation, response, AuthenticationError)
    token = structure(_data(operation, response), IAMToken)
    if not token.access_token:
        raise MalformedPayload("$.access_token", "empty token", provider=PROVIDER)
    return token
