"""The IBM half of the emulator: IAM token exchange and the Qiskit Runtime instance API.

Every route is served under ``/api/v1/...`` and ``/experimental/api/v1/...`` (qiskit-ibm-runtime
keeps a URL containing "experimental" as is, so pointing it at the emulator uses that prefix).
Requests are checked as IBM does: a bearer token from ``POST /identity/token`` that has not
expired (401), a ``Service-CRN`` header (400) naming a known instance (404) that the token's
account owns (403), and a well-formed ``IBM-API-Version`` (400). Error bodies follow the spec:
``ErrorContainer``, or ``GenericErrorDto`` for the usage route. Seed it from Python::

    emu.ibm.add_api_key("key", account_id="acct")
    emu.ibm.add_instance(CRN, plan_id="open", consumed_seconds=Decimal(120))

Seeding lives in ``_ibm_state``, IAM in ``_iam``, the wire helpers in ``_ibm_wire``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from quotaguard.testing.ibm.backends import (
    backend_configuration,
    backend_device,
    backend_status,
)
from quotaguard.testing.ibm.iam import bearer_account, exchange_api_key
from quotaguard.testing.ibm.sessions import accepting, session_body
from quotaguard.testing.ibm.state import (
    CATALOG_PLAN_IDS,
    IBMInstanceState,
    IBMJobState,
    IBMSessionState,
    IBMState,
)
from quotaguard.testing.ibm.wire import (
    ACCOUNT_ID,
    API_VERSION,
    INT32_MAX,
    PREFIX,
    QPU_CHARGE_TIME_SINCE,
    Reject,
    error_response,
    json_response,
    read_json,
    read_json_object,
)

__all__ = ["IBMInstanceState", "IBMJobState", "IBMService", "IBMSessionState"]

Handler = Callable[[web.Request, IBMInstanceState], Awaitable[web.StreamResponse]]


class IBMService(IBMState):
    """The aiohttp routes (named ``ibm.<operation>``) of the IBM half, over its seeded state."""

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/identity/token", self._iam_token, name="ibm.iam_token")
        r.add_get(
            "/globalcatalog/api/v1/{entry_id}", self._catalog_entry, name="ibm.get_catalog_entry"
        )
        api: list[tuple[str, str, str, Handler]] = [
            ("GET", "/instance", "get_instance", self._get_instance),
            ("GET", "/instances/configuration", "get_instance_configuration", self._get_config),
            ("PUT", "/instances/configuration", "update_instance_configuration", self._put_config),
            ("GET", "/instances/usage", "get_usage", self._get_usage),
            ("GET", "/accounts/{account_id}", "get_account", self._get_account),
            ("GET", "/backends", "list_backends", self._list_backends),
            ("GET", "/backends/{name}/configuration", "get_backend_configuration", self._backend),
            ("GET", "/backends/{name}/properties", "get_backend_properties", self._backend),
            ("GET", "/backends/{name}/status", "get_backend_status", self._backend),
            ("POST", "/jobs", "create_job", self._create_job),
            ("GET", "/jobs", "list_jobs", self._list_jobs),
            ("GET", "/jobs/{job_id}", "get_job", self._get_job),
            ("GET", "/jobs/{job_id}/metrics", "get_job_metrics", self._get_job_metrics),
            ("POST", "/sessions", "create_session", self._create_session),
            ("GET", "/sessions/{session_id}", "get_session", self._get_session),
            ("PATCH", "/sessions/{session_id}", "update_session", self._update_session),
        ]
        for method, path, operation, handler in api:
            r.add_route(
                method, PREFIX + path, self._guarded(operation, handler), name=f"ibm.{operation}"
            )

    def _guarded(
        self, operation: str, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        generic = operation == "get_usage"  # the spec gives this route GenericErrorDto bodies

        async def serve(request: web.Request) -> web.StreamResponse:
            try:
                self.advance_sessions()  # sessions run out on the emulator's clock
                return await handler(request, self._authorize(request))
            except Reject as exc:
                return error_response(exc, generic=generic)

        return serve

    def _authorize(self, request: web.Request) -> IBMInstanceState:
        account = bearer_account(request, self)
        version = request.headers.get("IBM-API-Version")
        if version is not None and not API_VERSION.match(version):
            raise Reject(400, "invalid_api_version", "IBM-API-Version must be YYYY-MM-DD")
        if version is not None:
            self.api_versions.add(version)
        crn = request.headers.get("Service-CRN")
        if not crn:
            raise Reject(400, "missing_service_crn", "The Service-CRN header is required")
        instance = self.instances.get(crn)
        if instance is None:
            raise Reject(404, "instance_not_found", "No instance with this Service-CRN")
        if instance.account_id != account:
            raise Reject(403, "forbidden", "The API key's account cannot access this instance")
        return instance

    async def _iam_token(self, request: web.Request) -> web.StreamResponse:
        return await exchange_api_key(request, self)

    async def _catalog_entry(self, request: web.Request) -> web.StreamResponse:
        """IBM Cloud's Global Catalog: a bearer token, no Service-CRN (not an instance API)."""
        try:
            bearer_account(request, self)
            entry = self.catalog_entries.get(request.match_info["entry_id"])
            if entry is None:
                raise Reject(404, "not_found", "No catalog entry with this id")
        except Reject as exc:
            return error_response(exc, generic=False)
        return json_response(entry)

    async def _get_instance(
        self, request: web.Request, inst: IBMInstanceState
    ) -> web.StreamResponse:
        body: dict[str, Any] = {"backends": inst.backends, "plan_id": inst.plan_id}
        if inst.limit_seconds is not None:
            body["instance_limit"] = inst.limit_seconds  # deprecated, still sent
            body["instance_limit_seconds"] = str(inst.limit_seconds)
        if inst.allocation_seconds is not None:
            body["usage_allocation_seconds"] = str(inst.allocation_seconds)
        return json_response(body)

    async def _get_config(self, request: web.Request, inst: IBMInstanceState) -> web.StreamResponse:
        return json_response({"instance_limit": inst.limit_seconds})

    async def _put_config(self, request: web.Request, inst: IBMInstanceState) -> web.StreamResponse:
        data = await read_json(request)
        limit = data.get("instance_limit", ...) if isinstance(data, dict) else ...
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= INT32_MAX
        ):
            raise Reject(400, "invalid_request", "instance_limit must be null or 1..2147483647")
        if limit is not None and Decimal(limit) < inst.consumed_seconds:
            raise Reject(
                409,
                "usage_exceeds_limit",
                f"Usage ({inst.consumed_seconds} s) exceeds the requested instance limit",
            )
        inst.limit_seconds = None if limit is None else Decimal(limit)
        return web.Response(status=204)

    async def _get_usage(self, request: web.Request, inst: IBMInstanceState) -> web.StreamResponse:
        body: dict[str, Any] = {
            "instance_id": inst.crn,
            "plan_id": inst.plan_id,
            "usage_consumed_seconds": inst.consumed_seconds,
        }
        if inst.limit_seconds is not None and inst.usage_reports_limit:
            body["usage_limit_seconds"] = inst.limit_seconds
        if inst.allocation_seconds is not None and inst.usage_reports_limit:
            body["usage_allocation_seconds"] = inst.allocation_seconds
        if inst.effective_limit is not None and inst.usage_reports_limit:
            body["usage_limit_reached"] = inst.limit_reached
        if inst.usage_period is not None:
            start, end = inst.usage_period
            body["usage_period"] = {"start_time": start, "end_time": end}
        return json_response(body)

    async def _get_account(
        self, request: web.Request, inst: IBMInstanceState
    ) -> web.StreamResponse:
        account_id = request.match_info["account_id"]
        if not ACCOUNT_ID.match(account_id):
            raise Reject(400, "invalid_request", "Account id must match ^[a-zA-Z0-9-_]+$")
        plans = self.account_plans.get(account_id)
        if plans is None:  # "If no account information is found, returns the default"
            plans = [
                {
                    "plan_id": CATALOG_PLAN_IDS["open"],
                    "subscription_id": "default",
                    "subscription_name": "default",
                    "backends": [],
                    "max_ttl": 600,
                }
            ]
        plan_id = request.query.get("plan_id")
        if plan_id is not None:
            plans = [p for p in plans if p.get("plan_id") == plan_id]
            if not plans:
                raise Reject(404, "plan_not_found", "No configuration for this plan")
        return json_response({"plans": plans})

    async def _list_backends(
        self, request: web.Request, inst: IBMInstanceState
    ) -> web.StreamResponse:
        return json_response({"devices": [backend_device(name) for name in inst.backends]})

    async def _backend(self, request: web.Request, inst: IBMInstanceState) -> web.StreamResponse:
        """A backend's configuration, properties (none) or status, for qiskit-ibm-runtime."""
        name = request.match_info["name"]
        if inst.backends and name not in inst.backends:
            raise Reject(404, "backend_not_found", "No backend with this name in this instance")
        what = request.path.rsplit("/", 1)[-1]
        if what == "configuration":
            return json_response(backend_configuration(name))
        if what == "status":
            return json_response(backend_status(name))
        return json_response({})

    async def _create_job(self, request: web.Request, inst: IBMInstanceState) -> web.StreamResponse:
        data = await read_json_object(request)
        backend = data.get("backend")
        if not isinstance(backend, str) or (inst.backends and backend not in inst.backends):
            raise Reject(400, "invalid_backend", "backend is missing or not in this instance")
        cost = data.get("cost")
        if cost is not None and (
            isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= INT32_MAX
        ):
            raise Reject(400, "invalid_request", "cost (max_execution_time) must be 1..2^31-1")
        session_id = data.get("session_id")
        session = None if session_id is None else self.sessions.get(session_id)
        if session_id is not None and session is None:
            raise Reject(400, "invalid_session", "No session with this id")
        if session is not None and not accepting(session, self.clock()):
            raise Reject(400, "session_closed", "The session no longer accepts jobs")
        if inst.limit_reached:
            raise Reject(403, "usage_limit_reached", "The instance usage limit is reached")
        tags = data.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise Reject(400, "invalid_request", "tags must be a list of non-empty strings")
        job_id = f"emu{next(self._ids):017x}"
        job = self.add_job(job_id, inst.crn, backend=backend, session_id=session_id, cost=cost)
        job.program_id = str(data.get("program_id", "sampler"))
        job.tags = list(tags)
        return json_response({"id": job_id, "backend": backend})

    async def _list_jobs(self, request: web.Request, inst: IBMInstanceState) -> web.StreamResponse:
        """``GET /jobs``: this instance's jobs carrying every ``tags`` value, newest first,
        paged by ``limit``/``offset`` (``count`` is the total before paging)."""
        wanted = request.query.getall("tags", [])
        try:
            limit = int(request.query.get("limit", "200"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            raise Reject(400, "invalid_request", "limit and offset must be integers") from None
        jobs = [j for j in self.jobs.values() if j.crn == inst.crn]
        jobs = [j for j in reversed(jobs) if all(t in j.tags for t in wanted)]
        page = jobs[offset : offset + limit]
        return json_response(
            {"jobs": [_job_json(j) for j in page], "count": len(jobs), "limit": limit}
        )

    def _job(self, request: web.Request, inst: IBMInstanceState) -> IBMJobState:
        job = self.jobs.get(request.match_info["job_id"])
        if job is None or job.crn != inst.crn:
            raise Reject(404, "job_not_found", "No job with this id in this instance")
        return job

    async def _get_job(self, request: web.Request, inst: IBMInstanceState) -> web.StreamResponse:
        return json_response(_job_json(self._job(request, inst)))

    async def _get_job_metrics(
        self, request: web.Request, inst: IBMInstanceState
    ) -> web.StreamResponse:
        job = self._job(request, inst)
        version = request.headers.get("IBM-API-Version", QPU_CHARGE_TIME_SINCE)
        usage = _usage(job, current_api=version >= QPU_CHARGE_TIME_SINCE)
        timestamps = {"created": job.created, "running": job.running, "finished": job.finished}
        return json_response(
            {"usage": usage, "timestamps": timestamps, "qiskit_version": "emulator"}
        )

    async def _create_session(
        self, request: web.Request, inst: IBMInstanceState
    ) -> web.StreamResponse:
        data = await read_json_object(request)
        mode = data.get("mode", "dedicated")
        if inst.plan == "open" and mode != "batch":
            raise Reject(403, "sessions_not_allowed", "Open plan instances cannot open sessions")
        max_ttl = data.get("max_ttl") or self.plan_max_ttl(inst)
        session_id = f"emus{next(self._ids):016x}"
        backend = str(data.get("backend", inst.backends[0] if inst.backends else ""))
        self.add_session(session_id, inst.crn, backend=backend, mode=mode, max_ttl=max_ttl)
        return json_response({"id": session_id, "mode": mode, "max_ttl": max_ttl})

    def _session(self, request: web.Request, inst: IBMInstanceState) -> IBMSessionState:
        session = self.sessions.get(request.match_info["session_id"])
        if session is None or session.crn != inst.crn:
            raise Reject(404, "session_not_found", "No session with this id in this instance")
        return session

    async def _update_session(
        self, request: web.Request, inst: IBMInstanceState
    ) -> web.StreamResponse:
        """``{"accepting_jobs": false}``: what qiskit-ibm-runtime's ``Session.close()`` sends."""
        session = self._session(request, inst)
        data = await read_json_object(request)
        accepting_jobs = data.get("accepting_jobs", session.accepting_jobs)
        if not isinstance(accepting_jobs, bool):
            raise Reject(400, "invalid_request", "accepting_jobs must be true or false")
        if not accepting_jobs:
            self.close_session(session.id)
        return web.Response(status=204)

    async def _get_session(
        self, request: web.Request, inst: IBMInstanceState
    ) -> web.StreamResponse:
        session = self._session(request, inst)
        return json_response(session_body(session, self.session_jobs(session.id), self.clock()))


def _job_json(job: IBMJobState) -> dict[str, Any]:
    return {
        "id": job.id,
        "backend": job.backend,
        "status": job.status,
        "state": {
            "status": job.status,
            "reason": job.reason,
            "reason_code": job.reason_code,
        },
        "created": job.created,
        "session_id": job.session_id,
        "cost": job.cost,
        "program": {"id": job.program_id},
        "tags": job.tags,
    }


def _usage(job: IBMJobState, *, current_api: bool) -> dict[str, Any]:
    """A job's ``usage`` in metrics. The current API says ``status: "pending"`` until the figure
    is final (qiskit-ibm-runtime 0.51 ``RuntimeJobV2.usage``) and ``"complete"`` after (as its
    ``fake_provider/local_runtime_job.py`` does); the older API (the seeds) has no status and
    shows its figures once final."""
    if job.quantum_seconds is None and not job.usage_pending:
        return {}
    if current_api:
        figure = job.billed_seconds or Decimal(0)
        return {
            "qpu_charge_time_seconds": figure,
            "status": "pending" if job.usage_pending else "complete",
        }
    if job.usage_pending:
        return {}
    return {"quantum_seconds": job.quantum_seconds, "seconds": job.billed_seconds}
