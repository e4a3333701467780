"""Calling the caller's ``submit``: on the loop or on a worker thread, always under a deadline.

:class:`Sender` is the part of ``BudgetGuard`` that runs ``submit`` and decides what happens to
the hold: released when nothing can have been sent, bound to the job when one was created.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from quotaguard.engine.model import Reservation
from quotaguard.errors import QuotaGuardError, SubmitTimeout
from quotaguard.guard.contract import Adapter
from quotaguard.ledger.base import Ledger

__all__ = ["Sender", "is_async", "within"]

log = logging.getLogger("quotaguard.guard")


def is_async(fn: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, with a shortcut for a plain ``async def``."""
    if type(fn) is types.FunctionType and fn.__code__.co_flags & inspect.CO_COROUTINE:
        return True
    return inspect.iscoroutinefunction(fn)


def _awaitable(value: object) -> bool:
    # None (what most sends that return nothing give) skips isawaitable's ABC check.
    return value is not None and inspect.isawaitable(value)


async def within(awaitable: Awaitable[Any], deadline: float) -> Any:
    """``await awaitable`` under the loop-time ``deadline``.

    A coroutine is stepped once first: if it finishes without suspending, it could not have
    hung, and no timer is armed. Otherwise the rest of it runs under the deadline (fixed
    before the call, so the first step's time counts against it). The timeout scope is
    entered before the first step (with no deadline: no timer), so a cancellation that step
    asks for is told apart from the timeout exactly as ``asyncio.timeout`` does.
    """
    if type(awaitable) is types.CoroutineType:
        async with asyncio.timeout(None) as scope:
            try:
                first = awaitable.send(None)
            except StopIteration as done:
                return done.value
            scope.reschedule(deadline)
            return await _resume(awaitable, first)
    async with asyncio.timeout_at(deadline):
        return await awaitable


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Generator[Any, Any, Any]:
    """Go on with a coroutine already stepped once: what ``yield from`` does after its first
    step (the task's wake-ups are sent on, its cancellations thrown in)."""
    value = first
    while True:
        thrown: BaseException | None = None
        sent: Any = None
        try:
            sent = yield value
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            # Thrown in below, outside this handler: inside it, the coroutine would see the
            # exception as one being handled (sys.exc_info, the implicit __context__).
            thrown = exc
        try:
            value = coro.send(sent) if thrown is None else coro.throw(thrown)
        except StopIteration as done:
            return done.value
        finally:
            del thrown


class Sender:
    """Runs the caller's ``submit`` and decides what becomes of the hold around it.

    It owns the worker threads that sync sends run on and the follow-up tasks (bind or
    release) of sends that outlived their caller; ``aclose`` waits for those, then lets the
    threads go. ``ledger``, ``clock`` and ``submit_timeout`` are the guard's, handed over.
    """

    def __init__(
        self, ledger: Ledger, *, clock: Callable[[], datetime], submit_timeout: float
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.submit_timeout = submit_timeout
        # Sync sends (SDK calls) run on threads of our own: callers waiting on the guard from
        # the loop's default executor (asyncio.to_thread) can never starve them.
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="quotaguard-send")
        self._followups: set[asyncio.Task[Any]] = set()

    async def aclose(self) -> None:
        """Wait (up to 30 s) for the follow-ups, then stop taking sends on threads."""
        if self._followups:
            await asyncio.wait(self._followups, timeout=30)
        self._executor.shutdown(wait=False)

    async def send_unheld(self, submit: Callable[[], Any]) -> Any:
        """Call ``submit`` for work that holds nothing; :class:`SubmitTimeout` past the
        deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.submit_timeout
        try:
            if is_async(submit):
                result = await within(submit(), deadline)
            else:
                async with asyncio.timeout_at(deadline):
                    result = await asyncio.shield(loop.run_in_executor(self._executor, submit))
            return await within(result, deadline) if _awaitable(result) else result
        except TimeoutError as exc:
            if isinstance(exc, QuotaGuardError):
                raise
            raise SubmitTimeout(f"submit did not return within {self.submit_timeout:g}s") from exc

    async def send_held(
        self, submit: Callable[[], Any], reservation: Reservation, work: object, adapter: Adapter
    ) -> Any:
        """Call ``submit`` while ``reservation`` holds its budget.

        What happens to the hold when the call fails depends on whether the work may have
        been sent. ``submit`` raised: nothing was sent, release. We were cancelled while an
        async ``submit`` ran: release (a cancelled submission holds nothing). A sync
        ``submit`` still running on its thread (cancelled or timed out): the thread cannot be
        stopped, so the hold follows it: bound if it returns a job, released if it raises.
        An async ``submit`` that timed out may have reached the provider: the hold stays until
        its lease expires (or ``release()``), and :class:`SubmitTimeout` says so.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.submit_timeout
        pending: asyncio.Future[Any] | None = None
        try:
            if is_async(submit):
                result = await within(submit(), deadline)
            else:
                async with asyncio.timeout_at(deadline):
                    pending = loop.run_in_executor(self._executor, submit)
                    result = await asyncio.shield(pending)
            if _awaitable(result):
                result = await within(result, deadline)
            return result
        except BaseException as exc:
            if pending is not None and not pending.done():
                pending.add_done_callback(
                    functools.partial(self._thread_finished, reservation, work, adapter)
                )
                if isinstance(exc, TimeoutError) and not isinstance(exc, QuotaGuardError):
                    raise SubmitTimeout(
                        f"submit did not return within {self.submit_timeout:g}s; it is still "
                        f"running on its thread and reservation {reservation.id} follows it",
                        reservation_id=reservation.id,
                    ) from exc
                raise
            if isinstance(exc, TimeoutError) and not isinstance(exc, QuotaGuardError):
                raise SubmitTimeout(
                    f"submit did not return within {self.submit_timeout:g}s and may have "
                    f"reached the provider; reservation {reservation.id} stays held until its "
                    "lease expires (release() it if you know nothing was sent)",
                    reservation_id=reservation.id,
                ) from exc
            await self._release_shielded(reservation.id)
            raise

    async def bind(self, reservation: Reservation, external_id: str) -> Reservation:
        """Tie the hold to the provider's job. The work was sent: never fail the caller here."""
        for attempt in range(3):
            task = asyncio.ensure_future(self.ledger.bind(reservation.id, external_id))
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                await asyncio.wait([task], timeout=30)
                raise
            except QuotaGuardError as exc:
                log.warning(
                    "bind %s to %s failed (attempt %d): %s",
                    reservation.id,
                    external_id,
                    attempt + 1,
                    exc,
                )
                await asyncio.sleep(0.05 * 2**attempt)
        log.error(
            "reservation %s stays unbound; %s was sent; settle it with settle(%r, actual=...)",
            reservation.id,
            external_id,
            reservation.id,
        )
        return reservation

    def _thread_finished(
        self, reservation: Reservation, work: object, adapter: Adapter, done: asyncio.Future[Any]
    ) -> None:
        """A send that outlived its caller ended: bind the job it created, or release."""
        external_id = None
        if not done.cancelled() and done.exception() is None:
            external_id = adapter.external_id(work, done.result())
        follow: Awaitable[Any] = (
            self.ledger.bind(reservation.id, external_id)
            if external_id is not None
            else self.ledger.release(reservation.id, now=self.clock())
        )
        task = asyncio.ensure_future(follow)
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _release_shielded(self, reservation_id: str) -> None:
        task = asyncio.ensure_future(self.ledger.release(reservation_id, now=self.clock()))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task], timeout=30)
            raise
