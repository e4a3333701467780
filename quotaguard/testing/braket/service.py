"""The Braket half of the emulator: botocore's rest-json routes, enforcing limits as Braket does.

Routes follow botocore's ``braket`` model (2019-09-01) and also accept the seed's spellings
(``PUT``/``DELETE /spending-limit/{arn}``). A SigV4 ``Authorization`` header is required; once
:meth:`~BraketState.add_credentials` has registered a key, its signature is verified as AWS
does (403 ``UnrecognizedClientException`` / ``InvalidSignatureException``), before that only its
shape is checked. ``CreateQuantumTask`` charges a QPU task the per-task fee + shots × the
per-shot price of the emulator's own table (``prices``) and reserves it as ``queuedSpend``;
over the limit, or outside the limit's time window, it answers Braket's own 400
``ValidationException``. Tests drive task state with :meth:`BraketService.complete_task`,
:meth:`fail_task` and :meth:`cancel_task`, or seed how tasks run (:meth:`seed_run`: a run
time after which they end by themselves); a task sent with a Braket Direct reservation
(:meth:`add_reservation`) as its association is charged to no spending limit.

Seeding lives in ``state``, the held records in ``models``, request fields and documents in
``wire``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web

from quotaguard.testing.braket.devices import capabilities
from quotaguard.testing.braket.errors import ApiError, error_response, validation
from quotaguard.testing.braket.models import ACCOUNT, EmuDevice, EmuLimit, EmuTask
from quotaguard.testing.braket.sigv4 import AUTH, verify
from quotaguard.testing.braket.state import BraketState
from quotaguard.testing.braket.wire import (
    amount,
    associations,
    created_filtered,
    device_json,
    filtered,
    limit_json,
    page,
    period,
    task_json,
    task_summary_json,
)

__all__ = [
    "OVER_LIMIT_MESSAGE",
    "BraketService",
    "EmuDevice",
    "EmuLimit",
    "EmuTask",
    "capabilities",
]

OVER_LIMIT_MESSAGE = (
    "Attempted to spend over the spending limit or outside the spending limit time window. "
    "Please update the spending limit or wait for queued tasks to finish."
)
Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.Response]]
_T = TypeVar("_T")


def _arn(request: web.Request) -> str:
    return unquote(request.match_info["arn"])


def _found(items: Mapping[str, _T], arn: str, what: str) -> _T:
    item = items.get(arn)
    if item is None:
        raise ApiError(404, "ResourceNotFoundException", f"{what} {arn} not found")
    return item


class BraketService(BraketState):
    """The aiohttp routes (named ``braket.<Operation>``) of the Braket half, over its state."""

    def add_routes(self, app: web.Application) -> None:
        routes = [
            ("POST", "/spending-limit", "CreateSpendingLimit", self._create_limit),
            ("PATCH", "/spending-limit/{arn:.+}/update", "UpdateSpendingLimit", self._update_limit),
            (
                "DELETE",
                "/spending-limit/{arn:.+}/delete",
                "DeleteSpendingLimit",
                self._delete_limit,
            ),
            ("PUT", "/spending-limit/{arn:.+}", "UpdateSpendingLimit.seed", self._update_limit),
            ("DELETE", "/spending-limit/{arn:.+}", "DeleteSpendingLimit.seed", self._delete_limit),
            ("POST", "/spending-limits", "SearchSpendingLimits", self._search_limits),
            ("GET", "/device/{arn:.+}", "GetDevice", self._get_device),
            ("POST", "/devices", "SearchDevices", self._search_devices),
            ("POST", "/quantum-task", "CreateQuantumTask", self._create_task),
            ("PUT", "/quantum-task/{arn:.+}/cancel", "CancelQuantumTask", self._cancel_task),
            ("GET", "/quantum-task/{arn:.+}", "GetQuantumTask", self._get_task),
            ("POST", "/quantum-tasks", "SearchQuantumTasks", self._search_tasks),
        ]
        for method, path, name, handler in routes:
            app.router.add_route(method, path, self._wrap(handler), name=f"braket.{name}")

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            try:
                match = AUTH.match(request.headers.get("Authorization", ""))
                if match is None:
                    raise ApiError(
                        403,
                        "MissingAuthenticationTokenException",
                        "Missing or malformed SigV4 Authorization header",
                    )
                raw = await request.read()
                if self._secrets:
                    verify(
                        request,
                        raw,
                        match,
                        self._secrets,
                        now=self.clock(),
                        max_skew=self.max_clock_skew,
                    )
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    raise validation("request body is not JSON") from None
                if not isinstance(body, dict):
                    raise validation("request body must be a JSON object")
                self.run_due()
                return await handler(request, {**body, "@region": match["region"]})
            except ApiError as exc:
                return error_response(exc)

        return run

    def _idempotent(self, op: str, body: dict[str, Any]) -> tuple[str, str | None]:
        token = body.get("clientToken")
        if not isinstance(token, str) or not 1 <= len(token) <= 64:
            raise validation("clientToken is required (1-64 characters)")
        return token, self._tokens.get((op, token))

    # -- spending limits -------------------------------------------------------------------

    async def _create_limit(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        token, seen = self._idempotent("CreateSpendingLimit", body)
        if seen is not None:
            return web.json_response({"spendingLimitArn": seen}, status=201)
        device_arn = body.get("deviceArn")
        if not isinstance(device_arn, str) or "::device/qpu/" not in device_arn:
            raise validation("deviceArn must be a QPU device ARN")
        limit = amount(body.get("spendingLimit"))
        when = period(body.get("timePeriod"))
        if self.limit_for(device_arn) is not None:
            raise validation(f"A spending limit already exists for device {device_arn}")
        arn = self.add_spending_limit(device_arn, limit, time_period=when, tags=body.get("tags"))
        self._tokens[("CreateSpendingLimit", token)] = arn
        return web.json_response({"spendingLimitArn": arn}, status=201)

    async def _update_limit(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        lim = _found(self.limits, _arn(request), "Spending limit")
        if request.method == "PATCH":
            self._idempotent("UpdateSpendingLimit", body)
        new = amount(body["spendingLimit"]) if "spendingLimit" in body else None
        when = period(body.get("timePeriod"))
        if new is not None and new < lim.total + lim.queued:
            raise validation(
                "The new spending limit is less than the sum of the total and queued spend"
            )
        if new is not None:
            lim.amount = new
        if when is not None:
            lim.period = when
        lim.updated_at = self.clock()
        return web.json_response({})

    async def _delete_limit(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        lim = _found(self.limits, _arn(request), "Spending limit")
        del self.limits[lim.arn]
        return web.json_response({})

    async def _search_limits(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        fields = {"deviceArn": "device_arn", "spendingLimitArn": "arn"}
        return self._search(body, list(self.limits.values()), fields, "spendingLimits", limit_json)

    # -- devices ---------------------------------------------------------------------------

    async def _get_device(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        dev = self.devices.get(_arn(request))
        if dev is None:
            raise ApiError(404, "ResourceNotFoundException", "Braket device not found")
        return web.json_response(device_json(dev, full=True))

    async def _search_devices(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        fields = {
            "deviceArn": "arn",
            "deviceType": "type",
            "providerName": "provider",
            "deviceStatus": "status",
            "deviceName": "name",
        }

        def summary(dev: EmuDevice) -> dict[str, Any]:
            return device_json(dev, full=False)

        return self._search(body, list(self.devices.values()), fields, "devices", summary)

    @staticmethod
    def _search(
        body: dict[str, Any],
        items: list[_T],
        fields: Mapping[str, str],
        key: str,
        document: Callable[[_T], dict[str, Any]],
    ) -> web.Response:
        """One page of ``items`` after the request's filters, as ``{key: [...], nextToken}``."""
        chunk, token = page(body, filtered(body, items, fields))
        out: dict[str, Any] = {key: [document(item) for item in chunk]}
        if token:
            out["nextToken"] = token
        return web.json_response(out)

    # -- quantum tasks ---------------------------------------------------------------------

    async def _create_task(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        token, seen = self._idempotent("CreateQuantumTask", body)
        if seen is not None:
            return web.json_response({"quantumTaskArn": seen}, status=201)
        dev = self.devices.get(str(body.get("deviceArn")))
        if dev is None:
            raise validation("Device requested not found")
        if dev.status == "RETIRED":
            raise ApiError(410, "DeviceRetiredException", f"{dev.arn} is retired")
        if dev.status == "OFFLINE":
            raise ApiError(424, "DeviceOfflineException", f"{dev.arn} is offline")
        shots = body.get("shots")
        low = 1 if dev.type == "QPU" else 0
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < low:
            raise validation(f"shots must be an integer >= {low}")
        for key in ("outputS3Bucket", "outputS3KeyPrefix", "action"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise validation(f"{key} is required")
        now = self.clock()
        direct = self._associations(body.get("associations"), dev.arn)
        # A QPU task reserves its price as queued spend; a simulator's is billed when it ends.
        # A task under a Braket Direct reservation is paid for by the reservation: no limit.
        cost = dev.price.charge(shots) if dev.type == "QPU" and not direct else Decimal(0)
        lim = self.limit_for(dev.arn) if dev.type == "QPU" and not direct else None
        if lim is not None:
            outside = lim.period is not None and not lim.period[0] <= now < lim.period[1]
            if outside or cost > lim.amount - lim.total - lim.queued:
                raise validation(OVER_LIMIT_MESSAGE)
            lim.queued += cost
        region = str(body["@region"])
        arn = f"arn:aws:braket:{region}:{ACCOUNT}:quantum-task/{uuid.uuid4()}"
        params = body.get("deviceParameters")
        self.tasks[arn] = EmuTask(
            arn,
            dev.arn,
            shots,
            cost,
            "QUEUED",
            body["outputS3Bucket"],
            body["outputS3KeyPrefix"],
            now,
            params if isinstance(params, str) else "{}",
            limit_arn=lim.arn if lim else None,
            tags=dict(body.get("tags") or {}),
            run=self.seeded_run(dev),
            associations=direct,
        )
        self.start(self.tasks[arn])
        self._tokens[("CreateQuantumTask", token)] = arn
        return web.json_response({"quantumTaskArn": arn}, status=201)

    async def _search_tasks(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        """``SearchQuantumTasks``: filters on ``deviceArn``, ``status``, ``quantumTaskArn``
        (EQUAL) and ``createdAt`` (any operator), as Braket serves them; summaries carry tags."""
        if not isinstance(body.get("filters"), list):
            raise validation("filters is required")
        tasks = created_filtered(body, list(self.tasks.values()))
        fields = {"deviceArn": "device_arn", "status": "status", "quantumTaskArn": "arn"}
        return self._search(body, tasks, fields, "quantumTasks", task_summary_json)

    def _associations(self, raw: object, device_arn: str) -> list[dict[str, str]]:
        """The request's associations (their shape: ``wire.associations``), each a reservation
        of this device, as Braket checks."""
        out = associations(raw)
        for item in out:
            if self.reservations.get(item["arn"]) != device_arn:
                raise validation(f"{item['arn']} is not a reservation of device {device_arn}")
        return out

    async def _get_task(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        task = _found(self.tasks, _arn(request), "Quantum task")
        return web.json_response(task_json(task))

    async def _cancel_task(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        self._idempotent("CancelQuantumTask", body)
        task = _found(self.tasks, _arn(request), "Quantum task")
        self.cancel_task(task.arn)
        return web.json_response({"quantumTaskArn": task.arn, "cancellationStatus": "CANCELLED"})
