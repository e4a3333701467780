"""Guard the Amazon Braket SDK: every quantum task it creates passes through a ``BudgetGuard``.

``AwsDevice.run``, ``AwsDevice.run_batch`` (its thread pool) and ``AwsQuantumTask.create`` all
end in one method, ``AwsSession.create_quantum_task(**request)``, which completes the request
(a ``DirectReservation`` context's association, a hybrid job's token) and hands it to the boto3
client. quotaguard hooks that method on the class, so sessions the SDK makes itself
(``AwsSession()`` in ``AwsDevice``, ``AwsSession.copy_session`` for another region or for
``run_batch``'s pool) are covered too, and guards the boto3 call inside it: the request it
prices is the one sent (``deviceArn``; ``shots`` with the SDK's defaults applied: 1000 on a QPU,
a program set's total shots; ``associations``: a task under a Braket Direct reservation is
charged nothing). That boto3 call is also the one stamped with the hold's id (tag
``quotaguard:reservation=<id>``, ``clientToken`` from the id), so a lost reply can be found
again. A simulator task that draws on a budget declares how long it may run with a
``max_duration=timedelta(...)`` keyword to ``run``/``run_batch``/``AwsQuantumTask.create``,
which quotaguard takes out before the SDK sees it (the SDK would pass it on to
``AwsQuantumTask`` and fail after the task was created)::

    bridge = GuardBridge.current(guard)          # or GuardBridge.start(make_guard)
    with guarded_braket(bridge, budgets=["team:research"]):
        task = await asyncio.to_thread(device.run, circuit, shots=100)
        sim = await asyncio.to_thread(sv1.run, circuit, max_duration=timedelta(minutes=5))

or, per session (its copies inherit the guard): ``guard_session(aws_session, bridge)``.

Over budget, ``device.run`` raises :class:`~quotaguard.errors.BudgetExceeded` and nothing is
sent. In ``run_batch`` the rejected tasks raise from the batch after the admitted ones were
created (the SDK waits for its whole pool). The hook is installed once, on first use, and is a
pass-through for sessions nothing guards; :func:`uninstall` removes it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from quotaguard._extras import missing as missing_extra
from quotaguard.braket.work import BraketTask
from quotaguard.errors import InvalidInput
from quotaguard.guard.sends import reservation_of
from quotaguard.guard.stamps import Stamped, braket_tag, client_token
from quotaguard.integrations._bridge import GuardBridge, IntegrationError

if TYPE_CHECKING:
    from quotaguard.braket.pricing import Price

__all__ = [
    "BraketGuardConfig",
    "guard_session",
    "guarded_braket",
    "stamp_request",
    "task_from_request",
    "unguard_session",
    "uninstall",
]

#: Where a guarded session keeps its configuration (copied onto the sessions it copies).
_ATTR = "_quotaguard_braket"

_lock = threading.Lock()
#: The session type given, handed back: ``guard_session`` returns what it was passed.
_Session = TypeVar("_Session")
_originals: dict[str, Callable[..., Any]] = {}
_active: BraketGuardConfig | None = None
#: The ``max_duration`` of the ``AwsQuantumTask.create`` call running in this thread (the SDK
#: creates a task in the thread that called it, ``run_batch`` in its pool's threads).
_local = threading.local()


def _budgets(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput("budgets", "pass a sequence of budget keys, e.g. ['team:research']")
    if not all(isinstance(k, str) and k for k in value):
        raise InvalidInput("budgets", "every budget key must be a non-empty string")
    return tuple(value)


def _prices(value: object) -> Mapping[str, Price]:
    from quotaguard.braket.pricing import Price

    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Price) for k, v in value.items()
    ):
        raise InvalidInput("prices", "pass a mapping of device ARN to pricing.Price")
    return dict(value)


def _bridge(value: object) -> GuardBridge:
    if not isinstance(value, GuardBridge):
        raise InvalidInput(
            "bridge", "pass a GuardBridge (GuardBridge.current(guard) or GuardBridge.start(...))"
        )
    return value


@attrs.frozen
class BraketGuardConfig:
    """How tasks are guarded: the bridge to the guard, the user budgets they also draw on, and
    prices for devices the guard's price table does not know."""

    bridge: GuardBridge = attrs.field(converter=_bridge)
    budgets: tuple[str, ...] = attrs.field(default=(), converter=_budgets)
    prices: Mapping[str, Price] = attrs.field(factory=dict, converter=_prices)


def task_from_request(
    request: Mapping[str, Any],
    prices: Mapping[str, Price] | None = None,
    *,
    max_duration: timedelta | None = None,
) -> BraketTask:
    """The :class:`BraketTask` for a ``CreateQuantumTask`` request as the SDK sends it.

    ``shots`` is what the SDK sends: its defaults are already applied, and for a program set
    it is the set's total shots across all executables. A ``RESERVATION_TIME_WINDOW_ARN``
    association makes it a Braket Direct task (charged nothing).
    """
    device_arn = request.get("deviceArn")
    shots = request.get("shots")
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int)):
        raise InvalidInput("shots", f"shots must be an int, got {type(shots).__name__}")
    price = (prices or {}).get(device_arn) if isinstance(device_arn, str) else None
    return BraketTask(
        device_arn,
        shots=shots,
        price_override=price,
        max_duration=max_duration,
        reservation_arn=reservation_of(request.get("associations")),
    )


def stamp_request(request: Mapping[str, Any], reservation_id: str | None) -> dict[str, Any]:
    """The request tagged ``quotaguard:reservation=<id>``, its ``clientToken`` derived from the
    id (the SDK's boto3 client would make a random one): found again if the reply is lost."""
    if reservation_id is None:
        return dict(request)
    tags = {**(request.get("tags") or {}), **braket_tag(reservation_id)}
    return {**request, "tags": tags, "clientToken": client_token(reservation_id)}


class _GuardedClient:
    """A session's boto3 ``braket`` client whose ``create_quantum_task`` goes through the guard
    with the request exactly as the SDK sends it (stamped with the hold's id, so the reservation
    association and the stamps are on the one request sent); everything else is the client's."""

    def __init__(self, client: Any, config: BraketGuardConfig) -> None:
        self._client = client
        self._config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_quantum_task(self, **request: Any) -> Any:
        config = self._config
        work = task_from_request(
            request, config.prices, max_duration=getattr(_local, "max_duration", None)
        )
        send = self._client.create_quantum_task
        submission = config.bridge.submit(
            work,
            Stamped(lambda rid: send(**stamp_request(request, rid))),
            budgets=config.budgets,
        )
        return submission.result


class _Via:
    """The session as ``AwsSession.create_quantum_task`` sees it, its client guarded."""

    def __init__(self, session: Any, client: _GuardedClient) -> None:
        self._session = session
        self.braket_client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _config_of(session: object) -> BraketGuardConfig | None:
    found = getattr(session, _ATTR, None)
    return found if isinstance(found, BraketGuardConfig) else _active


def _install() -> None:
    """Hook ``AwsSession.create_quantum_task`` and ``copy_session`` once (under ``_lock``)."""
    if _originals:
        return
    try:
        from braket.aws.aws_session import AwsSession
    except ImportError as exc:
        raise missing_extra("braket", "the Braket SDK integration") from exc
    # Feature detection: a release without the two methods hooked here cannot be guarded.
    missing = [n for n in ("create_quantum_task", "copy_session") if not hasattr(AwsSession, n)]
    if missing:
        raise IntegrationError(
            f"braket.aws.AwsSession has no {', '.join(missing)}: this amazon-braket-sdk does "
            "not have the submission path quotaguard hooks"
        )
    from braket.aws.aws_quantum_task import AwsQuantumTask

    create = AwsSession.create_quantum_task
    copy = AwsSession.copy_session
    create_task = AwsQuantumTask.create

    def create_quantum_task(self: Any, **request: Any) -> Any:
        config = _config_of(self)
        if config is None:
            return create(self, **request)
        # The SDK completes the request inside this method (a DirectReservation context's
        # association, a job token): guard the client call it ends in, which sees all of it.
        return create(_Via(self, _GuardedClient(self.braket_client, config)), **request)

    def create_quantum_task_with_duration(*args: Any, **kwargs: Any) -> Any:
        before = getattr(_local, "max_duration", None)
        _local.max_duration = kwargs.pop("max_duration", None)
        try:
            return create_task(*args, **kwargs)
        finally:
            _local.max_duration = before

    def copy_session(self: Any, *args: Any, **kwargs: Any) -> Any:
        copied = copy(self, *args, **kwargs)
        own = getattr(self, _ATTR, None)
        if own is not None:
            setattr(copied, _ATTR, own)
        return copied

    create_quantum_task.__wrapped__ = create  # type: ignore[attr-defined]
    copy_session.__wrapped__ = copy  # type: ignore[attr-defined]
    create_quantum_task_with_duration.__wrapped__ = create_task  # type: ignore[attr-defined]
    _originals.update(create_quantum_task=create, copy_session=copy, task_create=create_task)
    AwsSession.create_quantum_task = create_quantum_task
    AwsSession.copy_session = copy_session
    AwsQuantumTask.create = staticmethod(create_quantum_task_with_duration)


def uninstall() -> None:
    """Remove the hook (no session is guarded afterwards). Refused while a guard is active."""
    global _active
    with _lock:
        if _active is not None:
            raise IntegrationError("a guarded_braket(...) block is still active")
        if not _originals:
            return
        from braket.aws.aws_quantum_task import AwsQuantumTask
        from braket.aws.aws_session import AwsSession

        AwsSession.create_quantum_task = _originals.pop("create_quantum_task")
        AwsSession.copy_session = _originals.pop("copy_session")
        AwsQuantumTask.create = staticmethod(_originals.pop("task_create"))


def guard_session(
    session: _Session,
    bridge: GuardBridge,
    *,
    budgets: Sequence[str] = (),
    prices: Mapping[str, Price] | None = None,
) -> _Session:
    """Guard one ``AwsSession`` (and every session copied from it); returns the session."""
    config = BraketGuardConfig(bridge, budgets, prices or {})
    with _lock:
        _install()
        from braket.aws.aws_session import AwsSession

        if not isinstance(session, AwsSession):
            raise InvalidInput("session", "pass a braket.aws.AwsSession")
        setattr(session, _ATTR, config)
    return session


def unguard_session(session: Any) -> None:
    """Stop guarding ``session`` (its own configuration; copies made earlier keep theirs)."""
    with contextlib.suppress(AttributeError):
        delattr(session, _ATTR)


@contextlib.contextmanager
def guarded_braket(
    bridge: GuardBridge,
    *,
    budgets: Sequence[str] = (),
    prices: Mapping[str, Price] | None = None,
) -> Iterator[BraketGuardConfig]:
    """Guard every ``AwsSession`` in this process for the duration of the block.

    Sessions guarded with :func:`guard_session` keep their own configuration. One block at a
    time: the hook is process-wide, and SDK threads do not inherit context variables.
    """
    global _active
    config = BraketGuardConfig(bridge, budgets, prices or {})
    with _lock:
        if _active is not None:
            raise IntegrationError(
                "guarded_braket(...) is already active; one block at a time (use "
                "guard_session(...) to guard sessions with different budgets)"
            )
        _install()
        _active = config
    try:
        yield config
    finally:
        with _lock:
            _active = None
