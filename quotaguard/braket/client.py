"""``BraketClient``: the Braket API over aiohttp, with botocore's model, signer and credentials;
and :func:`load_price_list`, AWS's public Price List for Braket. All Braket HTTP is here.

Region, endpoint and retry settings resolved once, as botocore would (:mod:`.config`);
credentials from botocore's standard chain, looked up and refreshed off the event loop; every
call idempotent (reads, or writes carrying a ``clientToken``), so every call is retried on
429/5xx/connection errors. The client never logs or repr()s secrets.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.credentials
import botocore.session

from quotaguard._aio import AsyncClosing
from quotaguard._http import HTTPClient, Response, RetryPolicy, check_endpoint
from quotaguard.braket import config, sansio
from quotaguard.braket.checks import check_region, parse_device_arn
from quotaguard.braket.models import Device, QuantumTask, SpendingLimit, TimePeriod
from quotaguard.braket.pricing import DEFAULT_OFFERS_URL, PriceTable
from quotaguard.braket.signing import sign
from quotaguard.errors import AuthenticationError, InvalidInput, MalformedPayload

__all__ = ["BraketClient", "endpoint_for", "load_price_list"]


def endpoint_for(
    region: str,
    endpoint_url: str | None = None,
    botocore_session: botocore.session.Session | None = None,
) -> str:
    """The Braket endpoint a ``boto3.client("braket", region_name=region)`` sends to: explicit
    URL, then ``AWS_ENDPOINT_URL_BRAKET``, ``AWS_ENDPOINT_URL``, the profile's ``[services]``
    section and ``endpoint_url``, else the regional endpoint (FIPS and dual-stack as set)."""
    session = botocore_session or botocore.session.get_session()
    return config.resolve_endpoint(session, check_region(region), endpoint_url)


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
        # Once, here: botocore's config chain and endpoint rules never run per call.
        self.region = config.resolve_region(self._botocore, region)
        self.endpoint = config.resolve_endpoint(self._botocore, self.region, endpoint_url)
        self._http = HTTPClient(
            provider=sansio.PROVIDER,
            session=session,
            timeout=timeout,
            retry=retry,
            configured_retry=None if retry is not None else config.resolve_retry(self._botocore),
            secrets=lambda: self._held,
        )
        self._credentials: botocore.credentials.Credentials | None = None
        # The credentials of the latest signatures (a refresh keeps the one before): scrubbed
        # from every error answer, which may quote the request it refused.
        self._held: tuple[str, ...] = ()
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
                provider=sansio.PROVIDER,
            )
        if isinstance(creds, botocore.credentials.RefreshableCredentials) and (
            creds.refresh_needed()
        ):
            frozen = await asyncio.to_thread(creds.get_frozen_credentials)
        else:
            frozen = creds.get_frozen_credentials()
        held = tuple(v for v in (frozen.access_key, frozen.secret_key, frozen.token) if v)
        if held != self._held[: len(held)]:
            self._held = (*held, *self._held[:3])
        return frozen

    async def _send(self, request: sansio.Request) -> Response:
        creds = await self._frozen()
        signed = sign(request, endpoint=self.endpoint, region=self.region, credentials=creds)
        return await self._http.request(
            signed.method,
            signed.url,
            headers=signed.headers,
            data=signed.body,
            idempotent=True,
            encoded=True,  # the path SigV4 signed, as signed (ARNs: %3A, %2F)
        )

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
        request = sansio.build_create_spending_limit(
            device_arn, amount, time_period, tags, client_token
        )
        arn = request.params["deviceArn"]
        if check_existing and (existing := await self.spending_limit_for(arn)) is not None:
            raise InvalidInput(
                "device_arn",
                f"{arn} already has spending limit {existing.spending_limit_arn}; update it",
            )
        return sansio.decipher_field(request, await self._send(request), "spendingLimitArn")

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
        request = sansio.build_update_spending_limit(
            arn, amount, time_period, current=current, client_token=client_token
        )
        sansio.decipher(request, await self._send(request))

    async def delete_spending_limit(self, arn: str) -> None:
        request = sansio.build_delete_spending_limit(arn)
        sansio.decipher(request, await self._send(request))

    async def search_spending_limits(
        self, device_arns: Sequence[str] | None = None, *, page_size: int = sansio.PAGE_SIZE
    ) -> AsyncIterator[SpendingLimit]:
        """Every limit (optionally for ``device_arns``), following ``nextToken``."""
        for group in sansio.search_groups(device_arns, page_size):
            token: str | None = None
            while True:
                request = sansio.build_search_spending_limits(group, page_size, token)
                limits, token = sansio.decipher_spending_limits(request, await self._send(request))
                for limit in limits:
                    yield limit
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
        request = sansio.build_get_device(arn)
        return sansio.decipher_as(request, await self._send(request), Device)

    async def get_quantum_task(self, arn: str) -> QuantumTask:
        request = sansio.build_get_quantum_task(arn)
        return sansio.decipher_as(request, await self._send(request), QuantumTask)

    async def cancel_quantum_task(self, arn: str, client_token: str | None = None) -> str:
        request = sansio.build_cancel_quantum_task(arn, client_token)
        return sansio.decipher_field(request, await self._send(request), "cancellationStatus")

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
        associations: Sequence[Mapping[str, str]] | None = None,
        estimate: Decimal | None = None,
    ) -> str:
        """Send a task; returns its ARN. Braket's own over-limit 400 raises
        ``BudgetExceeded(source="server")`` (``estimate`` fills in the requested amount).
        ``associations=[{"arn": <reservation ARN>, "type": "RESERVATION_TIME_WINDOW_ARN"}]`` runs
        it under that Braket Direct reservation. Unguarded: send it through
        ``guard.braket.create_quantum_task`` (same arguments), which reserves what this sends."""
        request = sansio.build_create_quantum_task(
            device_arn,
            action,
            shots,
            output_s3_bucket,
            output_s3_key_prefix,
            device_parameters,
            client_token,
            tags,
            job_token,
            associations=associations,
            estimate=estimate,
        )
        return sansio.decipher_field(request, await self._send(request), "quantumTaskArn")

    async def find_quantum_tasks(
        self,
        tag: tuple[str, str],
        *,
        device_arns: Sequence[str] | None = None,
        created_after: datetime | None = None,
    ) -> list[str]:
        """ARNs of the tasks tagged ``tag`` (key, value) among those on ``device_arns`` created
        at or after ``created_after`` (``SearchQuantumTasks``, every page)."""
        found: list[str] = []
        token: str | None = None
        while True:
            request = sansio.build_search_quantum_tasks(device_arns, created_after, token)
            page, token = sansio.decipher_tagged_tasks(request, await self._send(request), *tag)
            found += page
            if not token:
                return found


# -- AWS's public Price List -------------------------------------------------------------------

_cache: dict[str, PriceTable] = {}
_locks: dict[str, asyncio.Lock] = {}


async def _fetch(source: str, timeout: float, session: Any) -> str:
    if source.startswith(("http://", "https://")):
        check_endpoint(source, "BRAKET_PRICE_OFFERS_URL")
        async with HTTPClient(provider="braket", session=session, timeout=timeout) as http:
            response = await http.request("GET", source, idempotent=True)
        if not response.ok:
            raise MalformedPayload(
                "BRAKET_PRICE_OFFERS_URL",
                f"GET {source} answered HTTP {response.status}",
                provider="braket",
            )
        return response.body.decode("utf-8")
    path = Path(source.removeprefix("file://"))
    try:
        return await asyncio.to_thread(path.read_text, "utf-8")
    except OSError as exc:
        raise InvalidInput("BRAKET_PRICE_OFFERS_URL", f"cannot read {path}: {exc}") from exc


async def load_price_list(
    source: str | None = None,
    *,
    session: Any = None,
    timeout: float = 60.0,
    refresh: bool = False,
    base: PriceTable | None = None,
) -> PriceTable:
    """Load AWS's Price List CSV for Braket (``BRAKET_PRICE_OFFERS_URL`` or ``source``, a URL
    or a local file path), cached per source; merged over ``base`` (the offline default)."""
    where = source or os.environ.get("BRAKET_PRICE_OFFERS_URL") or DEFAULT_OFFERS_URL
    lock = _locks.setdefault(where, asyncio.Lock())
    async with lock:  # one download per source, however many coroutines ask
        table = None if refresh else _cache.get(where)
        if table is None:
            text = await _fetch(where, timeout, session)
            table = await asyncio.to_thread(PriceTable.from_offer_csv, text)
            _cache[where] = table
    return (base if base is not None else PriceTable.default()).merged(table)
