"""Guarded sends for plain async code: each value is written once.

``guard.ibm.run_job(...)`` and ``guard.braket.create_quantum_task(...)`` take the arguments of
the provider clients' methods of the same names, build the :class:`IBMJob` / :class:`BraketTask`
from exactly those arguments, and go through ``BudgetGuard.submit`` (so the guarantees and the
errors are the same: reserve, send only if admitted, bind, in doubt when the outcome is unknown).
The work is stamped with its reservation id (:mod:`quotaguard.guard.stamps`), so the watcher can
find a send whose reply was lost.

:func:`check_send` is the other half: ``guard.submit(work, functools.partial(client.run_job,
...))`` is compared with the partial's arguments, and a mismatch is refused before anything is
held.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from quotaguard.errors import InvalidInput
from quotaguard.guard.contract import Submission
from quotaguard.guard.stamps import Stamped, braket_tag, client_token, ibm_tag

if TYPE_CHECKING:
    from quotaguard.braket.client import BraketClient
    from quotaguard.guard.core import BudgetGuard
    from quotaguard.ibm.client import IBMRuntimeClient

__all__ = ["BraketSends", "IBMSends", "check_send", "reservation_of"]


def _client(guard: BudgetGuard, provider: str, hint: str) -> Any:
    for adapter in guard.adapters:
        client = getattr(adapter, "client", None)
        if adapter.provider == provider and client is not None:
            return client
    raise InvalidInput("guard", f"the guard has no {provider} client; pass {hint}")


class IBMSends:
    """``guard.ibm``: Qiskit Runtime jobs sent through the guard."""

    def __init__(self, guard: BudgetGuard) -> None:
        self._guard = guard

    async def run_job(
        self,
        program_id: str,
        backend: str,
        params: dict[str, Any],
        *,
        max_execution_time: int | None = None,
        session_id: str | None = None,
        tags: Sequence[str] = (),
        simulator: bool = False,
        budgets: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> Submission[Any]:
        """Reserve what this job can cost, then ``POST /v1/jobs`` it; ``submission.external_id``
        is the job id. Arguments as :meth:`IBMRuntimeClient.run_job`; the job is tagged
        ``quotaguard:<reservation id>``. Raises what ``BudgetGuard.submit`` raises.
        """
        from quotaguard.ibm.work import IBMJob

        client: IBMRuntimeClient = _client(
            self._guard, "ibm", "BudgetGuard(ibm=IBMRuntimeClient(...))"
        )
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise InvalidInput("tags", "must be a list of job tags (strings)")
        work = IBMJob(
            backend=backend,
            max_execution_time=max_execution_time,
            session_id=session_id,
            input_bytes=_json_size(params, "params"),
            simulator=simulator,
        )

        async def send(reservation_id: str | None) -> str:
            stamp = [ibm_tag(reservation_id)] if reservation_id else []
            return await client.run_job(
                program_id,
                backend,
                params,
                max_execution_time=max_execution_time,
                session_id=session_id,
                tags=[*tags, *stamp] or None,
            )

        return await self._guard.submit(
            work, Stamped(send), budgets=budgets, idempotency_key=idempotency_key
        )


class BraketSends:
    """``guard.braket``: Braket quantum tasks sent through the guard."""

    def __init__(self, guard: BudgetGuard) -> None:
        self._guard = guard

    async def create_quantum_task(
        self,
        device_arn: str,
        action: str | Mapping[str, Any],
        shots: int,
        output_s3_bucket: str,
        output_s3_key_prefix: str,
        device_parameters: str | Mapping[str, Any] | None = None,
        *,
        tags: Mapping[str, str] | None = None,
        job_token: str | None = None,
        associations: Sequence[Mapping[str, str]] | None = None,
        budgets: Iterable[str] = (),
        idempotency_key: str | None = None,
        **task: Any,
    ) -> Submission[Any]:
        """Reserve what this task can cost, then ``CreateQuantumTask`` it;
        ``submission.external_id`` is the task ARN. Arguments as
        :meth:`BraketClient.create_quantum_task` (a reservation's ``associations`` make it a
        Braket Direct task); ``task`` takes the other :class:`BraketTask` fields
        (``price_override``, ``max_duration``). The task is tagged
        ``quotaguard:reservation=<id>`` and its ``clientToken`` derives from the id, so a
        retried request creates one task. Raises what ``BudgetGuard.submit`` raises.
        """
        from quotaguard.braket import sansio
        from quotaguard.braket.work import BraketTask

        client: BraketClient = _client(
            self._guard, "braket", "BudgetGuard(braket=BraketClient(...))"
        )
        user_tags = sansio.check_tags(tags) or {}
        work = BraketTask(
            device_arn, shots=shots, reservation_arn=reservation_of(associations), **task
        )

        async def send(reservation_id: str | None) -> str:
            stamp = braket_tag(reservation_id) if reservation_id else {}
            return await client.create_quantum_task(
                device_arn,
                action,
                shots,
                output_s3_bucket,
                output_s3_key_prefix,
                device_parameters,
                client_token(reservation_id) if reservation_id else None,
                {**user_tags, **stamp} or None,
                job_token,
                associations=associations,
            )

        return await self._guard.submit(
            work, Stamped(send), budgets=budgets, idempotency_key=idempotency_key
        )


def _json_size(value: object, field: str) -> int:
    try:
        return len(json.dumps(value).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"must be JSON-serializable: {exc}") from None


def reservation_of(associations: object) -> str | None:
    """The reservation ARN among ``CreateQuantumTask`` associations (checked), if any."""
    if associations is None:
        return None
    from quotaguard.braket.sansio import check_associations

    found = check_associations(associations)
    return found[0]["arn"] if found else None


# -- guard.submit(work, functools.partial(client.method, ...)) -------------------------------


def _client_method(send: object) -> tuple[str, functools.partial[Any]] | None:
    """``("ibm" | "braket", partial)`` when ``send`` partially applies one of the sending
    methods of our clients; modules not loaded yet cannot own the method (nothing imported)."""
    if not isinstance(send, functools.partial):
        return None
    owner, name = getattr(send.func, "__self__", None), getattr(send.func, "__name__", None)
    ibm, braket = (
        sys.modules.get("quotaguard.ibm.client"),
        sys.modules.get("quotaguard.braket.client"),
    )
    if ibm is not None and isinstance(owner, ibm.IBMRuntimeClient) and name == "run_job":
        return "ibm", send
    if (
        braket is not None
        and isinstance(owner, braket.BraketClient)
        and name == "create_quantum_task"
    ):
        return "braket", send
    return None


def _mismatch(field: str, described: object, sent: object, method: str) -> InvalidInput:
    return InvalidInput(
        field,
        f"the work says {field}={described!r} but the send ({method}) sends {sent!r}; the "
        "guard would hold for the one and the provider run the other. Describe the work "
        "with the values you send, or send with guard.ibm.run_job / "
        "guard.braket.create_quantum_task, which take each value once",
    )


def check_send(work: object, send: object) -> None:
    """Refuse ``work`` whose description disagrees with the client call ``send`` makes.

    Only a ``functools.partial`` of ``IBMRuntimeClient.run_job`` or
    ``BraketClient.create_quantum_task`` can be read; any other send is the caller's word.
    Compared: IBM backend, ``max_execution_time``, ``session_id``; Braket device, shots and
    the reservation association (what decides the hold).
    """
    found = _client_method(send)
    if found is None:
        return
    provider, partial = found
    method = f"{type(partial.func.__self__).__name__}.{partial.func.__name__}"  # type: ignore[attr-defined]
    try:
        bound = inspect.signature(partial.func).bind_partial(*partial.args, **partial.keywords)
    except TypeError as exc:
        raise InvalidInput("submit", f"the arguments of {method} do not fit it: {exc}") from None
    bound.apply_defaults()
    args = bound.arguments
    if provider == "ibm":
        from quotaguard.ibm.work import IBMJob

        if not isinstance(work, IBMJob):
            raise InvalidInput("work", f"{method} sends an IBM job; describe it as an IBMJob")
        pairs = [
            ("backend", work.backend),
            ("max_execution_time", work.max_execution_time),
            ("session_id", work.session_id),
        ]
    else:
        from quotaguard.braket.work import BraketTask

        if not isinstance(work, BraketTask):
            raise InvalidInput("work", f"{method} sends a Braket task; describe it as a BraketTask")
        from quotaguard.braket.checks import parse_device_arn

        if "associations" in args:
            args["reservation_arn"] = reservation_of(args["associations"])
        if "device_arn" in args:
            args["device_arn"] = parse_device_arn(args["device_arn"]).arn
        pairs = [
            ("device_arn", work.device_arn),
            ("shots", work.effective_shots),
            ("reservation_arn", work.reservation_arn),
        ]
    for field, described in pairs:
        if field in args and args[field] != described:
            raise _mismatch(field, described, args[field], method)
