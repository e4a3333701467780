"""``BraketClient``: the Braket API over aiohttp, with botocore's model, signer and credentials.

Endpoint resolved once; credentials from botocore's standard chain, looked up and refreshed
off the event loop; every call idempotent (reads, or writes carrying a ``clientToken``), so
every call is retried on 429/5xx/connection errors. The client never logs or repr()s secrets.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import botocore.credentials
import botocore.session

from quotaguard._aio import AsyncClosing
from quotaguard._http import HTTPClient, RetryPolicy
from quotaguard.braket import sansio
from quotaguard.braket.models import Device, QuantumTask, SpendingLimit, TimePeriod, structure
from quotaguard.braket.rules import check_create, check_time_period, check_update
from quotaguard.braket.work import (
    check_amount,
    check_shots,
    check_spending_limit_arn,
    check_task_arn,
    parse_device_arn,
)
from quotaguard.errors import AuthenticationError, InvalidInput, MalformedPayload

__all__ = ["BraketClient"]

T = TypeVar("T")
PAGE_SIZE = 100  # the model's maximum maxResults


def _token(value: object, field: str = "client_token") -> str:
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise InvalidInput(field, "client token must be a string of 1-64 characters")
    return value


def _tags(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput("tags", "tags must be a mapping of str to str")
    return dict(value)


def _period(value: TimePeriod | None) -> dict[str, Any] | None:
    return None if value is None else {"startAt": value.start_at, "endAt": value.end_at}


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


class BraketClient(AsyncClosing):
    """``async with BraketClient("us-east-1") as braket: ...``."""

    def __init__(
        self,
        region: str | None = None,
        *,
        endpoint_url: str | None = None,
        botocore_session: botocore.session.Session | None = None,
        session: Any = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._botocore = botocore_session or botocore.session.get_session()
        # AWS_REGION is what the SDKs document; botocore itself reads only AWS_DEFAULT_REGION.
        resolved = (
            region or os.environ.get("AWS_REGION") or self._botocore.get_config_variable("region")
        )
        if not isinstance(resolved, str) or not resolved:
            raise InvalidInput("region", "no AWS region; pass region= or set AWS_REGION")
        self.region = resolved
        self.endpoint = sansio.endpoint_for(resolved, endpoint_url)
        self._http = HTTPClient(provider="braket", session=session, timeout=timeout, retry=retry)
        self._credentials: botocore.credentials.Credentials | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"BraketClient(region={self.region!r}, endpoint={self.endpoint!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _frozen(self) -> botocore.credentials.ReadOnlyCredentials:
        creds = self._credentials
        if creds is None:
            async with self._lock:  # one chain lookup (files, SSO, IMDS) however many callers
                if self._credentials is None:
                    self._credentials = await asyncio.to_thread(self._botocore.get_credentials)
                creds = self._credentials
        if creds is None:
            raise AuthenticationError(
                "no AWS credentials found (environment, profile, SSO, container or instance role)",
                provider="braket",
            )
        if isinstance(creds, botocore.credentials.RefreshableCredentials) and (
            creds.refresh_needed()
        ):
            return await asyncio.to_thread(creds.get_frozen_credentials)
        return creds.get_frozen_credentials()

    async def _call(
        self,
        name: str,
        params: Mapping[str, Any],
        *,
        device_arn: str | None = None,
        requested: Decimal | None = None,
    ) -> dict[str, Any]:
        creds = await self._frozen()
        req = sansio.prepare(
            name, params, endpoint=self.endpoint, region=self.region, credentials=creds
        )
        resp = await self._http.request(
            req.method,
            req.url,
            headers=req.headers,
            data=req.body,
            idempotent=True,
            encoded=True,  # the path SigV4 signed, as signed (ARNs: %3A, %2F)
        )
        if not resp.ok:
            raise sansio.decode_error(
                resp.status, resp.headers, resp.body, device_arn=device_arn, requested=requested
            )
        try:
            data = json.loads(resp.body) if resp.body else {}
        except ValueError:
            raise MalformedPayload(
                "$", f"{name} answered with non-JSON", provider="braket"
            ) from None
        if not isinstance(data, dict):
            raise MalformedPayload("$", f"{name} answered with a non-object", provider="braket")
        return data

    @staticmethod
    def _field(data: Mapping[str, Any], key: str, cls: type[T]) -> T:
        value = data.get(key)
        if not isinstance(value, cls):
            raise MalformedPayload(f"$.{key}", f"expected {cls.__name__}", provider="braket")
        return value

    # -- spending limits -------------------------------------------------------------------

    async def create_spending_limit(
        self,
        device_arn: str,
        amount: Decimal | str,
        time_period: TimePeriod | None = None,
        tags: Mapping[str, str] | None = None,
        client_token: str | None = None,
        *,
        check_existing: bool = True,
    ) -> str:
        """Create a limit; returns its ARN. Refused locally if the device already has one."""
        arn, value, period = check_create(device_arn, amount, time_period)
        params: dict[str, Any] = {
            "clientToken": _token(client_token),
            "deviceArn": arn,
            "spendingLimit": format(value, "f"),
        }
        if period is not None:
            params["timePeriod"] = _period(period)
        if (tag_map := _tags(tags)) is not None:
            params["tags"] = tag_map
        if check_existing and (existing := await self.spending_limit_for(arn)) is not None:
            raise InvalidInput(
                "device_arn",
                f"{arn} already has spending limit {existing.spending_limit_arn}; update it",
            )
        data = await self._call("CreateSpendingLimit", params)
        return self._field(data, "spendingLimitArn", str)

    async def update_spending_limit(
        self,
        arn: str,
        amount: Decimal | str | None = None,
        time_period: TimePeriod | None = None,
        *,
        current: SpendingLimit | None = None,
        client_token: str | None = None,
    ) -> None:
        """Change the amount and/or period. With ``current``, a new limit below its
        ``total_spend + queued_spend`` is refused before sending (as Braket would)."""
        limit_arn = check_spending_limit_arn(arn, "arn")
        period = check_time_period(time_period)
        if amount is None and period is None:
            raise InvalidInput("amount", "give a new amount, a new time_period, or both")
        params: dict[str, Any] = {
            "spendingLimitArn": limit_arn,
            "clientToken": _token(client_token),
        }
        if amount is not None:
            value = check_amount(amount)
            check_update(value, current)
            params["spendingLimit"] = format(value, "f")
        if period is not None:
            params["timePeriod"] = _period(period)
        await self._call("UpdateSpendingLimit", params)

    async def delete_spending_limit(self, arn: str) -> None:
        limit_arn = check_spending_limit_arn(arn, "arn")
        await self._call("DeleteSpendingLimit", {"spendingLimitArn": limit_arn})

    async def search_spending_limits(
        self, device_arns: Sequence[str] | None = None, *, page_size: int = PAGE_SIZE
    ) -> AsyncIterator[SpendingLimit]:
        """Every limit (optionally for ``device_arns``), following ``nextToken``."""
        if not 1 <= page_size <= PAGE_SIZE:
            raise InvalidInput("page_size", f"must be 1-{PAGE_SIZE}")
        if device_arns is None:
            groups: list[list[str] | None] = [None]
        else:
            if isinstance(device_arns, str):
                raise InvalidInput("device_arns", "pass a list of device ARNs, not one string")
            arns = [parse_device_arn(a, f"device_arns[{i}]").arn for i, a in enumerate(device_arns)]
            groups = [arns[i : i + 10] for i in range(0, len(arns), 10)]  # ≤ 10 values a filter
        for group in groups:
            token: str | None = None
            while True:
                params: dict[str, Any] = {"maxResults": page_size}
                if group is not None:
                    params["filters"] = [
                        {"name": "deviceArn", "operator": "EQUAL", "values": group}
                    ]
                if token:
                    params["nextToken"] = token
                data = await self._call("SearchSpendingLimits", params)
                items = data.get("spendingLimits")
                if not isinstance(items, list):
                    raise MalformedPayload("$.spendingLimits", "expected a list", provider="braket")
                for limit in structure(items, list[SpendingLimit], path="$.spendingLimits"):
                    yield limit
                token = data.get("nextToken")
                if not token:
                    break

    async def spending_limit_for(self, device_arn: str) -> SpendingLimit | None:
        arn = parse_device_arn(device_arn).arn
        async for limit in self.search_spending_limits([arn]):
            if limit.device_arn == arn:
                return limit
        return None

    # -- devices and tasks -----------------------------------------------------------------

    async def get_device(self, arn: str) -> Device:
        device_arn = parse_device_arn(arn, "arn").arn
        data = await self._call("GetDevice", {"deviceArn": device_arn})
        return structure(data, Device)

    async def get_quantum_task(self, arn: str) -> QuantumTask:
        task_arn = check_task_arn(arn, "arn")
        data = await self._call("GetQuantumTask", {"quantumTaskArn": task_arn})
        return structure(data, QuantumTask)

    async def cancel_quantum_task(self, arn: str, client_token: str | None = None) -> str:
        task_arn = check_task_arn(arn, "arn")
        data = await self._call(
            "CancelQuantumTask", {"quantumTaskArn": task_arn, "clientToken": _token(client_token)}
        )
        return self._field(data, "cancellationStatus", str)

    async def create_quantum_task(
        self,
        device_arn: str,
        action: str | Mapping[str, Any],
        shots: int,
        output_s3_bucket: str,
        output_s3_key_prefix: str,
        device_parameters: str | Mapping[str, Any] | None = None,
        client_token: str | None = None,
        tags: Mapping[str, str] | None = None,
        job_token: str | None = None,
        *,
        estimate: Decimal | None = None,
    ) -> str:
        """Send a task; returns its ARN. Braket's own over-limit 400 raises
        ``BudgetExceeded(source="server")`` (``estimate`` fills in the requested amount)."""
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
        if (tag_map := _tags(tags)) is not None:
            params["tags"] = tag_map
        if job_token is not None:
            params["jobToken"] = _str_len(job_token, "job_token", 1, 128)
        data = await self._call("CreateQuantumTask", params, device_arn=ref.arn, requested=estimate)
        return self._field(data, "quantumTaskArn", str)
