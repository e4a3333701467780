"""Guard a ``QiskitRuntimeService``: every job and session passes through a ``BudgetGuard``.

In qiskit-ibm-runtime 0.51 every submission path ends on the service's API client
(``qiskit_ibm_runtime.api.client.RuntimeClient``):

- jobs: ``QiskitRuntimeService._run`` → ``client.program_run(...)``, reached by SamplerV2 and
  EstimatorV2 in job mode, by ``Session._run`` and ``Batch._run``, and by the Executor-based
  primitives (``Executor._run`` calls ``mode._run`` or ``service._run``);
- sessions and batches: ``Session``/``Batch``/``AdvancedSession._create_session`` →
  ``client.create_session(backend, instance, max_time, mode, **kwargs)``.

:func:`guard_runtime` wraps those two methods on the service's client instances (and on clients
the service creates later for other instances), so the guard decides before the SDK sends
``POST /jobs`` or ``POST /sessions``. Over budget, the SDK call (``sampler.run(...)``,
``Batch(...)``) raises :class:`~quotaguard.errors.BudgetExceeded`. The SDK is synchronous: call
it from a worker thread (``await asyncio.to_thread(sampler.run, pubs)``) when the guard runs on
your event loop, or use :meth:`GuardBridge.start` in synchronous code.

The hooks are feature-detected at wrap time (a service or client without them raises
:class:`IntegrationError` rather than silently not guarding). Releases 0.50 and 0.51 are tested
(:data:`SUPPORTED_VERSIONS`); an older one is refused, and a newer one is refused unless
``QUOTAGUARD_ALLOW_UNTESTED_SDK=1``, which guards it with one
:class:`~quotaguard.integrations.UntestedSDKWarning`. The ``qiskit`` extra has no upper bound,
so installing a newer SDK is never blocked; this check is where an untested one is judged.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from quotaguard._extras import missing
from quotaguard.errors import InvalidInput
from quotaguard.guard.stamps import Stamped, ibm_tag
from quotaguard.ibm.work import IBMJob, IBMSession
from quotaguard.integrations._bridge import GuardBridge, IntegrationError
from quotaguard.integrations._versions import check_tested

if TYPE_CHECKING:
    from quotaguard.guard import BudgetGuard

__all__ = [
    "SUPPORTED_VERSIONS",
    "TESTED_RELEASES",
    "RuntimeGuardConfig",
    "check_version",
    "guard_runtime",
    "job_from_request",
    "session_from_request",
    "unguard_runtime",
]

#: The releases tested (the nox ``integrations`` session runs the oldest and the newest).
TESTED_RELEASES = ((0, 50), (0, 51))
SUPPORTED_VERSIONS = ">=0.50,<0.52"
#: Marks a wrapped client method; holds the original.
_ORIGINAL = "__quotaguard_original__"
_FACTORY = "_create_new_cloud_api_client"
#: The service type given, handed back: ``guard_runtime`` returns what it was passed.
_Service = TypeVar("_Service")


@attrs.frozen
class RuntimeGuardConfig:
    bridge: GuardBridge
    crn: str
    budgets: tuple[str, ...] = ()


def check_version(version: str) -> None:
    """Pass for a tested release (:data:`SUPPORTED_VERSIONS`); raise :class:`IntegrationError`
    for an older one, and for a newer one unless ``QUOTAGUARD_ALLOW_UNTESTED_SDK=1`` (then warn
    once)."""
    check_tested("qiskit-ibm-runtime", version, TESTED_RELEASES)


def _encoded_size(params: object) -> int:
    from qiskit_ibm_runtime.json import RuntimeEncoder

    return len(json.dumps(params, cls=RuntimeEncoder).encode("utf-8"))


def job_from_request(
    backend_name: object,
    params: object,
    *,
    max_execution_time: object = None,
    session_id: object = None,
    simulator: bool = False,
) -> IBMJob:
    """The :class:`IBMJob` for a ``program_run`` call: the inputs' size is their JSON length as
    the SDK serializes them; ``max_execution_time`` 0/None is unset (the SDK sends no ``cost``)."""
    return IBMJob(
        backend=backend_name,
        max_execution_time=max_execution_time or None,
        session_id=session_id or None,
        input_bytes=_encoded_size(params),
        simulator=simulator,
    )


def session_from_request(
    backend: object, max_time: object = None, mode: object = None, **kwargs: Any
) -> IBMSession:
    """The :class:`IBMSession` for a ``create_session`` call (``mode`` None is dedicated)."""
    return IBMSession(
        backend=getattr(backend, "name", backend),
        max_time=max_time or None,
        mode=mode or "dedicated",
        interactive_ttl=kwargs.get("interactive_ttl"),
        active_ttl=kwargs.get("active_ttl"),
    )


def _guard_crn(guard: BudgetGuard) -> str:
    for adapter in guard.adapters:
        crn = getattr(getattr(adapter, "client", None), "service_crn", None)
        if adapter.provider == "ibm" and isinstance(crn, str):
            return crn
    raise InvalidInput(
        "guard", "the guard has no IBM client; pass BudgetGuard(ibm=IBMRuntimeClient(...))"
    )


def _bridge_for(guard: BudgetGuard | GuardBridge, timeout: float | None) -> GuardBridge:
    if isinstance(guard, GuardBridge):
        return guard
    from quotaguard.guard import BudgetGuard

    if not isinstance(guard, BudgetGuard):
        raise InvalidInput("guard", "pass a BudgetGuard or a GuardBridge")
    try:
        return GuardBridge.current(guard, timeout=timeout)
    except RuntimeError:
        raise InvalidInput(
            "guard",
            "no event loop is running here; pass a GuardBridge (GuardBridge.start(...) for "
            "synchronous code)",
        ) from None


def _check_instance(config: RuntimeGuardConfig, instance: object) -> None:
    if instance is not None and instance != config.crn:
        raise IntegrationError(
            f"this submission targets instance {instance!r} but the guard watches "
            f"{config.crn!r}; refusing to send it unguarded. Guard that instance with a "
            "BudgetGuard whose IBMRuntimeClient uses its CRN"
        )


def _is_simulator(service: Any, backend_name: object) -> bool:
    config = getattr(service, "_backend_configs", {}).get(backend_name)
    return bool(getattr(config, "simulator", False))


def _wrap_client(client: Any, service: Any, config: RuntimeGuardConfig) -> None:
    """Replace ``program_run``/``create_session`` on this client instance (idempotent)."""
    for name in ("program_run", "create_session"):
        current = getattr(client, name)
        original = getattr(current, _ORIGINAL, current)
        signature = inspect.signature(original)
        hook = _job_hook if name == "program_run" else _session_hook
        wrapped = functools.partial(hook, original, signature, client, service, config)
        setattr(wrapped, _ORIGINAL, original)
        setattr(client, name, wrapped)


def _job_hook(
    original: Callable[..., Any],
    signature: inspect.Signature,
    client: Any,
    service: Any,
    config: RuntimeGuardConfig,
    *args: Any,
    **kwargs: Any,
) -> Any:
    call = signature.bind(*args, **kwargs)
    call.apply_defaults()
    request = call.arguments
    _check_instance(config, getattr(client, "_instance", None))
    work = job_from_request(
        request["backend_name"],
        request["params"],
        max_execution_time=request.get("max_execution_time"),
        session_id=request.get("session_id"),
        simulator=_is_simulator(service, request["backend_name"]),
    )
    given = list(request.get("job_tags") or [])

    def send(reservation_id: str | None) -> Any:
        # Tagged quotaguard:<reservation id>, so the watcher finds the job if the reply is lost.
        call.arguments["job_tags"] = [*given, ibm_tag(reservation_id)] if reservation_id else given
        return original(*call.args, **call.kwargs)

    submission = config.bridge.submit(work, Stamped(send), budgets=config.budgets)
    return submission.result


def _session_hook(
    original: Callable[..., Any],
    signature: inspect.Signature,
    client: Any,
    service: Any,
    config: RuntimeGuardConfig,
    *args: Any,
    **kwargs: Any,
) -> Any:
    call = signature.bind(*args, **kwargs)
    call.apply_defaults()
    request = dict(call.arguments)
    extra = request.pop("kwargs", {})
    _check_instance(config, request.get("instance") or getattr(client, "_instance", None))
    work = session_from_request(
        request.get("backend"), request.get("max_time"), request.get("mode"), **extra
    )
    submission = config.bridge.submit(
        work, lambda: original(*args, **kwargs), budgets=config.budgets
    )
    return submission.result


#: The hooks and the parameters the hooks read, by name: what feature detection checks.
_CLIENT_HOOKS = {
    "program_run": ("backend_name", "params", "max_execution_time", "session_id", "job_tags"),
    "create_session": ("backend", "instance", "max_time", "mode"),
}


def _require(obj: object, names: Sequence[str], what: str) -> None:
    missing = [n for n in names if not hasattr(obj, n)]
    for name in names:
        method = getattr(obj, name, None)
        params = _CLIENT_HOOKS.get(name, ())
        if method is not None and params:
            method = getattr(method, _ORIGINAL, method)
            have = inspect.signature(method).parameters
            missing += [f"{name}({p}=)" for p in params if p not in have]
    if missing:
        raise IntegrationError(
            f"{what} has no {', '.join(missing)}: this qiskit-ibm-runtime does not have the "
            f"submission path quotaguard hooks (tested: {SUPPORTED_VERSIONS})"
        )


def guard_runtime(
    service: _Service,
    guard: BudgetGuard | GuardBridge,
    *,
    budgets: Sequence[str] = (),
    timeout: float | None = None,
) -> _Service:
    """Guard every job and session ``service`` submits; returns ``service``.

    ``guard`` is a :class:`GuardBridge`, or a ``BudgetGuard`` when called on the guard's running
    loop (the bridge is made for you). ``budgets`` are user budget keys every submission also
    draws on. The guard's IBM client must use the service's instance CRN.
    """
    try:
        import qiskit_ibm_runtime
        from qiskit_ibm_runtime import QiskitRuntimeService
    except ImportError as exc:
        raise missing("qiskit", "the qiskit-ibm-runtime integration") from exc

    if not isinstance(service, QiskitRuntimeService):
        raise InvalidInput("service", "pass a qiskit_ibm_runtime.QiskitRuntimeService")
    if isinstance(budgets, str) or not all(isinstance(b, str) and b for b in budgets):
        raise InvalidInput("budgets", "pass a sequence of budget keys, e.g. ['team:research']")
    # The hooks first: without them no opt-in helps.
    _require(service, ("_api_clients", "_active_api_client", _FACTORY), "QiskitRuntimeService")
    clients = [*service._api_clients.values(), service._active_api_client]
    for client in clients:
        _require(client, tuple(_CLIENT_HOOKS), "the runtime API client")
    check_version(qiskit_ibm_runtime.__version__)
    bridge = _bridge_for(guard, timeout)
    config = RuntimeGuardConfig(bridge, _guard_crn(bridge.guard), tuple(budgets))
    for instance in service._api_clients:
        _check_instance(config, instance)
    for client in clients:
        _wrap_client(client, service, config)

    factory = getattr(service, _FACTORY)
    make = getattr(factory, _ORIGINAL, factory)

    def create_client(instance: str) -> Any:
        client = make(instance)
        _wrap_client(client, service, config)
        return client

    setattr(create_client, _ORIGINAL, make)
    setattr(service, _FACTORY, create_client)
    return service


def unguard_runtime(service: Any) -> None:
    """Undo :func:`guard_runtime` on ``service`` and its clients."""
    clients = [*service._api_clients.values(), service._active_api_client]
    for client in clients:
        for name in ("program_run", "create_session"):
            if hasattr(getattr(client, name), _ORIGINAL):
                delattr(client, name)  # the instance attribute shadowed the class method
    if hasattr(getattr(service, _FACTORY), _ORIGINAL):
        delattr(service, _FACTORY)
