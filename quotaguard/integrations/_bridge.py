"""``GuardBridge``: call an async :class:`~quotaguard.BudgetGuard` from SDK threads.

The provider SDKs are synchronous and run in threads (Braket's ``run_batch`` pool, user code in
``asyncio.to_thread``, plain scripts); the guard lives on one event loop. The bridge hands each
guard coroutine to that loop with :func:`asyncio.run_coroutine_threadsafe` and waits for it with
a timeout.

Calling the bridge *on the loop's own thread* would block the loop that must run the coroutine,
a certain deadlock. The bridge refuses instead, with :class:`WrongThread`: run the SDK call in a
worker thread (``await asyncio.to_thread(device.run, circuit)``) or give the guard a loop of its
own with :meth:`GuardBridge.start`, which runs it on a dedicated background thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from quotaguard.errors import InvalidInput, QuotaGuardError

if TYPE_CHECKING:
    from quotaguard.guard import BudgetGuard, Submission
    from quotaguard.guard.stamps import Stamped

__all__ = ["BridgeTimeout", "GuardBridge", "IntegrationError", "WrongThread"]

T = TypeVar("T")

#: Slack over the guard's own ``submit_timeout`` so the guard's timeout (which releases the
#: hold) fires before the bridge gives up waiting.
_SLACK = 30.0


class IntegrationError(QuotaGuardError, RuntimeError):
    """An SDK integration cannot guard this call (wrong thread, unsupported SDK version…)."""


class WrongThread(IntegrationError):
    """The bridge was called on the guard's event-loop thread, which would deadlock."""


class BridgeTimeout(IntegrationError, TimeoutError):
    """The guard did not answer within the bridge's timeout; the call was cancelled."""


def _check_timeout(value: object, field: str = "timeout") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidInput(field, f"must be a positive number of seconds, got {value!r}")
    return float(value)


class GuardBridge:
    """Runs ``guard`` coroutines on ``loop`` from any other thread.

    ``timeout`` bounds every wait (default: the guard's ``submit_timeout`` plus 30 s). Use
    :meth:`start` when no event loop exists yet (scripts, notebooks): the bridge then owns a
    background loop thread and :meth:`close` (or leaving ``with``) closes the guard and stops it.
    """

    def __init__(
        self,
        guard: BudgetGuard,
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: float | None = None,
    ) -> None:
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise InvalidInput("loop", "pass the event loop the guard runs on")
        self.guard = guard
        self.loop = loop
        if timeout is None:
            timeout = float(getattr(guard, "submit_timeout", 300.0)) + _SLACK
        self.timeout = _check_timeout(timeout)
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        owner = "owned" if self._thread is not None else "borrowed"
        return f"GuardBridge(guard={self.guard!r}, loop={owner}, timeout={self.timeout})"

    @classmethod
    def current(cls, guard: BudgetGuard, *, timeout: float | None = None) -> GuardBridge:
        """A bridge to the running loop: call from a coroutine, use from worker threads."""
        return cls(guard, asyncio.get_running_loop(), timeout=timeout)

    @classmethod
    def start(
        cls,
        guard_factory: Callable[[], BudgetGuard | Awaitable[BudgetGuard]],
        *,
        timeout: float | None = None,
        startup_timeout: float = 30.0,
    ) -> GuardBridge:
        """Start a loop on a daemon thread, build the guard on it, return a bridge that owns both.

        ``guard_factory`` is called on the new loop (it may be ``async``), so the guard's
        clients and sessions are created where they will be used.
        """
        startup = _check_timeout(startup_timeout, "startup_timeout")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="quotaguard-guard-loop", daemon=True)
        thread.start()
        if not ready.wait(startup):
            raise BridgeTimeout(f"the guard loop did not start within {startup} s")

        async def build() -> BudgetGuard:
            made = guard_factory()
            if inspect.isawaitable(made):
                made = await made
            return made

        try:
            guard = asyncio.run_coroutine_threadsafe(build(), loop).result(startup)
        except BaseException:
            _stop_loop(loop, thread, startup)
            raise
        bridge = cls(guard, loop, timeout=timeout)
        bridge._thread = thread
        return bridge

    # -- running ------------------------------------------------------------------------------

    def _check_thread(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is self.loop:
            raise WrongThread(
                "this SDK call was made on the guard's event-loop thread, where waiting for the "
                "guard would deadlock; run it in a worker thread (await asyncio.to_thread(...)) "
                "or give the guard its own loop with GuardBridge.start(...)"
            )

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the guard's loop and wait for it; cancel it on timeout."""
        try:
            wait = self.timeout if timeout is None else _check_timeout(timeout)
            self._check_thread()
            if self._closed or self.loop.is_closed():
                raise IntegrationError("the guard bridge is closed")
        except BaseException:
            coro.close()  # never leave a "coroutine was never awaited"
            raise
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(wait)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the guard's own TimeoutError (SubmitTimeout), not our wait running out
            # Cancelling the task makes the guard release any hold it took.
            future.cancel()
            raise BridgeTimeout(f"the guard did not answer within {wait} s") from None
        except concurrent.futures.CancelledError:
            raise IntegrationError("the guard call was cancelled on its event loop") from None

    def submit(
        self,
        work: object,
        send: Callable[[], Any] | Stamped,
        *,
        budgets: Sequence[str] = (),
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Submission[Any]:
        """``guard.submit(work, send, ...)`` from this thread; ``send`` runs only if admitted."""
        return self.run(
            self.guard.submit(work, send, budgets=budgets, idempotency_key=idempotency_key),
            timeout=timeout,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the guard and stop the loop if this bridge started them; else do nothing."""
        if self._thread is None or self._closed:
            self._closed = True
            return
        try:
            wait = min(self.timeout, 60.0)
            self.run(self.guard.aclose(), timeout=wait)
            self.run(self.loop.shutdown_asyncgens(), timeout=wait)
            self.run(self.loop.shutdown_default_executor(), timeout=wait)
        finally:
            self._closed = True
            _stop_loop(self.loop, self._thread, 30.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread, wait: float) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(wait)
    if not thread.is_alive():
        loop.close()
