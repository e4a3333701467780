"""The async client of the Qiskit Runtime instance API (plus job, metrics and session reads)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp

from quotaguard._aio import AsyncClosing
from quotaguard._http import HTTPClient, Response, RetryPolicy, check_endpoint
from quotaguard.ibm import sansio
from quotaguard.ibm.auth import IAMAuth, Secret
from quotaguard.ibm.config import region_base_url, resolve
from quotaguard.ibm.models import (
    CatalogEntry,
    ExpandedAccountConfiguration,
    GetUsageResponse,
    Instance,
    InstanceConfiguration,
    Job,
    JobMetrics,
    Session,
)

__all__ = ["IBMRuntimeClient"]

T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IBMRuntimeClient(AsyncClosing):
    """``async with IBMRuntimeClient(api_key, crn) as ibm: usage = await ibm.get_usage()``.

    ``api_key``/``service_crn`` left ``None`` are resolved from the environment and the saved
    qiskit-ibm-runtime account (see :mod:`quotaguard.ibm.config`). ``region`` defaults to the
    CRN's location; ``base_url`` (e.g. the emulator's ``.../api``) overrides it.
    ``catalog_url``: IBM Cloud's Global Catalog (plan names); defaults to IBM's own with IBM's
    regions, and to none (not asked) with a ``base_url`` of another service.
    """

    def __init__(
        self,
        api_key: str | Secret | None = None,
        service_crn: str | None = None,
        *,
        region: str | None = None,
        base_url: str | None = None,
        iam_url: str | None = None,
        catalog_url: str | None = None,
        api_version: str = sansio.DEFAULT_API_VERSION,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        clock: Callable[[], datetime] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        proxies: Mapping[str, str] | None = None,
    ) -> None:
        settings = resolve(
            api_key=api_key, service_crn=service_crn, base_url=base_url, iam_url=iam_url
        )
        #: Which account this client uses and where it came from (``quotaguard status``).
        self.account = settings.source
        self.service_crn = sansio.check_crn(settings.service_crn)
        self.api_version = sansio.check_api_version(api_version)
        if settings.base_url is not None:
            self.base_url = check_endpoint(settings.base_url, "base_url")
        else:
            where = region or sansio.region_from_crn(self.service_crn) or "us-east"
            self.base_url = region_base_url(where)
        if catalog_url is None and settings.base_url is None:
            catalog_url = sansio.DEFAULT_CATALOG_URL
        self.catalog_url: str | None = None
        if catalog_url is not None:
            self.catalog_url = check_endpoint(catalog_url, "catalog_url")
        self.iam_url = check_endpoint(settings.iam_url or sansio.DEFAULT_IAM_URL, "iam_url")
        self._clock = clock or _utcnow
        self._http = HTTPClient(
            provider=sansio.PROVIDER,
            session=session,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            clock=self._clock,
            secrets=lambda: self._auth.secrets(),
            proxies=proxies if proxies is not None else settings.proxies,
            error_trace=sansio.error_trace,
        )
        self._auth = IAMAuth(
            settings.api_key, iam_url=self.iam_url, http=self._http, clock=self._clock
        )

    @classmethod
    def from_config(
        cls,
        name: str | None = None,
        *,
        env: Mapping[str, str] = os.environ,
        path: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> IBMRuntimeClient:
        """The account :func:`quotaguard.ibm.config.resolve` finds: arguments (or the saved
        account ``name``), then ``env``, then the saved qiskit account, taken whole."""
        settings = resolve(
            api_key=overrides.pop("api_key", None),
            service_crn=overrides.pop("service_crn", None),
            base_url=overrides.pop("base_url", None),
            iam_url=overrides.pop("iam_url", None),
            name=name,
            env=env,
            path=path,
        )
        client = cls(
            settings.api_key,
            settings.service_crn,
            base_url=settings.base_url,
            iam_url=settings.iam_url,
            proxies=settings.proxies,
            **overrides,
        )
        client.account = settings.source
        return client

    def __repr__(self) -> str:
        return f"IBMRuntimeClient(service_crn={self.service_crn!r}, base_url={self.base_url!r})"

    @property
    def token_exchanges(self) -> int:
        return self._auth.exchanges

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, request: sansio.Request, instance: str | None = None) -> Response:
        """Send ``request`` for the client's instance, or for ``instance`` (another CRN the
        same API key may read: its ``Service-CRN`` header)."""
        url = self.base_url + request.path
        crn = self.service_crn if instance is None else sansio.check_crn(instance, "instance")
        token = await self._auth.token()
        for attempt in range(2):
            headers = sansio.api_headers(token, crn, self.api_version)
            if request.content_type:
                headers["Content-Type"] = request.content_type
            response = await self._http.request(
                request.method,
                url,
                headers=headers,
                data=request.body,
                idempotent=request.idempotent,
                safe_statuses=request.safe_statuses,
            )
            if response.status == 401 and attempt == 0:
                # The token expired or was revoked early: one refresh, one retry (a 401 was
                # not acted on, so repeating even a PUT is safe).
                self._auth.invalidate(token)
                token = await self._auth.token()
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, request: sansio.Request, model: type[T], instance: str | None = None) -> T:
        return sansio.decipher_as(request, await self._send(request, instance), model)

    async def get_instance(self, *, instance: str | None = None) -> Instance:
        return await self._get(sansio.build_get_instance(), Instance, instance)

    async def get_instance_configuration(self) -> InstanceConfiguration:
        return await self._get(sansio.build_get_instance_configuration(), InstanceConfiguration)

    async def update_instance_configuration(self, instance_limit: int | None) -> None:
        """Set the instance limit in seconds; ``None`` removes it. 409 → UsageExceedsLimit."""
        request = sansio.build_update_instance_configuration(instance_limit)
        sansio.decipher(request, await self._send(request))

    async def get_account(
        self, account_id: str, plan_id: str | None = None, *, instance: str | None = None
    ) -> ExpandedAccountConfiguration:
        return await self._get(
            sansio.build_get_account(account_id, plan_id), ExpandedAccountConfiguration, instance
        )

    async def get_catalog_entry(self, entry_id: str) -> CatalogEntry | None:
        """A Global Catalog entry (a plan's, by plan id); ``None`` without a catalog URL."""
        if self.catalog_url is None:
            return None
        request = sansio.build_get_catalog_entry(entry_id)
        token = await self._auth.token()
        response = await self._http.request(
            request.method,
            self.catalog_url + request.path,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            data=None,
            idempotent=True,
            safe_statuses=request.safe_statuses,
        )
        return sansio.decipher_as(request, response, CatalogEntry)

    async def get_usage(self, *, instance: str | None = None) -> GetUsageResponse:
        """The instance's usage (``instance``: another CRN's, read with this API key)."""
        return await self._get(sansio.build_get_usage(), GetUsageResponse, instance)

    async def get_job(self, job_id: str, *, instance: str | None = None) -> Job:
        request = sansio.build_get_job(job_id)
        return sansio.decipher_job(request, await self._send(request, instance))

    async def get_job_metrics(self, job_id: str, *, instance: str | None = None) -> JobMetrics:
        return await self._get(sansio.build_get_job_metrics(job_id), JobMetrics, instance)

    async def get_session(self, session_id: str, *, instance: str | None = None) -> Session:
        return await self._get(sansio.build_get_session(session_id), Session, instance)

    async def run_job(
        self,
        program_id: str,
        backend: str,
        params: dict[str, Any],
        *,
        max_execution_time: int | None = None,
        session_id: str | None = None,
        tags: list[str] | None = None,
    ) -> str:
        """Submit a job (``POST /v1/jobs``); returns its id. Unguarded: send it through
        ``guard.ibm.run_job`` (same arguments), which reserves what this sends."""
        request = sansio.build_run_job(
            program_id, backend, params, max_execution_time, session_id, tags
        )
        return sansio.decipher_id(request, await self._send(request))

    async def find_jobs(self, tag: str, *, instance: str | None = None) -> list[str]:
        """The ids of the instance's jobs carrying ``tag`` (``GET /v1/jobs?tags=...``)."""
        request = sansio.build_list_jobs([tag])
        return sansio.decipher_job_ids(request, await self._send(request, instance), tag)

    async def create_session(
        self, backend: str, *, mode: str = "dedicated", max_ttl: int | None = None
    ) -> str:
        """Open a session or batch (``POST /v1/sessions``); returns its id."""
        request = sansio.build_create_session(backend, mode, max_ttl)
        return sansio.decipher_id(request, await self._send(request))
