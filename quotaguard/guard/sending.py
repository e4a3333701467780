"""Calling the caller's ``submit``: on the loop or on a worker thread, always under a deadline.

:class:`Sender` is the part of ``BudgetGuard`` that runs ``submit`` and decides what happens to
the hold. The rule: a hold is released only when the work is *provably unsent*; bound to the
job when one was created; otherwise it stays held *in doubt* (``Ledger.mark_in_doubt``) until
the watcher resolves it, because counting work twice is the failure a budget guard may have
and counting it zero is not.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from quotaguard.engine.model import Reservation
from quotaguard.errors import BudgetExceeded, ProviderError, QuotaGuardError, SubmitTimeout
from quotaguard.guard.contract import Adapter
from quotaguard.guard.events import LOG_ONLY, Events
from quotaguard.ledger.base import Ledger

__all__ = ["Sender", "is_async", "provably_unsent", "within"]

T = TypeVar("T")

#: How long a follow-up (release, mark in doubt, bind) may keep a cancelled caller waiting.
FOLLOWUP_WAIT = 30.0

log = logging.getLogger("quotaguard.guard")


def is_async(fn: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, with a shortcut for a plain ``async def``."""
    if type(fn) is types.FunctionType and fn.__code__.co_flags & inspect.CO_COROUTINE:
        return True
    return inspect.iscoroutinefunction(fn)


def provably_unsent(exc: BaseException) -> bool:
    """Whether a send that raised ``exc`` after it was invoked created nothing.

    Only our own clients can say: a :class:`ProviderError` whose request was never written
    (``request_sent is False``: DNS, connection refused), or that a provider definitely
    refused (a reply below 500: bad request, throttled, forbidden; Braket's own over-limit
    ``BudgetExceeded``). Anything else (a 5xx, a timeout, a lost reply, a cancellation, an
    arbitrary exception from a custom callable) leaves the work in doubt.
    """
    if isinstance(exc, BudgetExceeded):
        return exc.source == "server"
    if isinstance(exc, ProviderError):
        if exc.request_sent is False:
            return True
        return exc.request_sent is True and exc.status is not None and exc.status < 500
    return False


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) and not isinstance(exc, QuotaGuardError)


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

    It owns the worker threads that sync sends run on and the follow-up tasks (release, mark
    in doubt, bind) that must finish even when their caller is cancelled; ``aclose`` waits for
    those, then lets the threads go. ``ledger``, ``clock`` and ``submit_timeout`` are the
    guard's, handed over (and ``events``, where the guard's events go).
    """

    events: Events = LOG_ONLY

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
        self._warned_no_id = False

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
        """Call ``submit`` while ``reservation`` holds its budget; on failure, decide the hold.

        Released (at once, shielded): ``submit`` was never invoked (it raised creating its
        coroutine, or a sync send was still queued for a thread), or it raised an error that
        proves nothing was created (:func:`provably_unsent`). Every other failure leaves the
        hold *in doubt*: kept, marked, and the error propagates (a timeout as
        :class:`SubmitTimeout` carrying the reservation id). A sync send still running on its
        thread cannot be stopped; the hold follows it: bound if it returns a job, released if
        it raises a provable refusal, in doubt otherwise.
        """
        deadline = asyncio.get_running_loop().time() + self.submit_timeout
        if is_async(submit):
            try:
                coroutine = submit()  # creates the coroutine; its body has not run
            except BaseException:
                await self._wait(self._release(reservation))
                raise
            return await self._await_sent(coroutine, deadline, reservation)
        try:
            thread = self._executor.submit(submit)
        except BaseException:
            await self._wait(self._release(reservation))
            raise
        waiter = asyncio.wrap_future(thread)
        try:
            async with asyncio.timeout_at(deadline):
                result = await asyncio.shield(waiter)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is exc:
                await self._failed(exc, reservation)  # the send itself raised
                raise
            if thread.cancel():  # still queued: it never started, nothing was sent
                await self._wait(self._release(reservation))
                if _is_timeout(exc):
                    raise SubmitTimeout(
                        f"submit did not start within {self.submit_timeout:g}s (every send "
                        "thread was busy); nothing was sent and its hold was released"
                    ) from exc
                raise
            # Running (or done, its outcome not yet seen): in doubt now, then follow the thread.
            doubt = self._spawn(self._mark_in_doubt(reservation, "its send runs on a thread"))
            self._spawn(self._follow_thread(doubt, waiter, reservation, work, adapter))
            await self._wait(doubt)
            if _is_timeout(exc):
                raise SubmitTimeout(
                    f"submit did not return within {self.submit_timeout:g}s; it is still "
                    f"running on its thread and reservation {reservation.id} stays held in "
                    "doubt, bound to the job if the send returns one",
                    reservation_id=reservation.id,
                ) from exc
            raise
        if _awaitable(result):  # e.g. a lambda that returned a coroutine: awaited on the loop
            return await self._await_sent(result, deadline, reservation)
        return result

    async def _await_sent(
        self, awaitable: Awaitable[Any], deadline: float, reservation: Reservation
    ) -> Any:
        """Await a send that has been invoked: any failure from here on is judged, not undone."""
        try:
            return await within(awaitable, deadline)
        except BaseException as exc:
            await self._failed(exc, reservation)
            if _is_timeout(exc):
                raise SubmitTimeout(
                    f"submit did not return within {self.submit_timeout:g}s and may have "
                    f"reached the provider; reservation {reservation.id} stays held in doubt "
                    "until the watcher resolves it (release() it if you know nothing was sent)",
                    reservation_id=reservation.id,
                ) from exc
            raise

    async def _failed(self, exc: BaseException, reservation: Reservation) -> None:
        if provably_unsent(exc):
            await self._wait(self._release(reservation))
        else:
            why = f"its send ended with {type(exc).__name__}"
            await self._wait(self._mark_in_doubt(reservation, why))

    async def bind_sent(
        self, reservation: Reservation, work: object, adapter: Adapter, result: object
    ) -> tuple[Reservation, str | None]:
        """The send returned: bind its job, or mark the hold in doubt (no id, or bind failed).

        The work was sent: this never fails the caller (a cancellation still propagates,
        after the bind or the mark has run).
        """
        sent_at = self.clock()
        try:
            external_id = adapter.external_id(work, result)
        except Exception as exc:  # the adapter's reading of the result; the work was sent
            log.warning("reading the job id of %s failed: %s", reservation.id, exc)
            external_id = None
        if external_id is None:
            # A send that returns nothing recognisable usually always does: warn once.
            level = logging.DEBUG if self._warned_no_id else logging.WARNING
            self._warned_no_id = True
            why = "its send returned no job id the guard recognises"
            marked = await self._wait(self._mark_in_doubt(reservation, why, level=level))
            return marked, None
        return await self._wait(self._bind(reservation, external_id, sent_at)), external_id

    # -- follow-ups: ledger writes that finish even if their caller is cancelled -----------

    def _spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coroutine)
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _wait(self, work: Coroutine[Any, Any, T] | asyncio.Task[T]) -> T:
        """Run ``work`` to its end; a cancelled caller waits (bounded) for it, then re-raises."""
        task = work if isinstance(work, asyncio.Task) else self._spawn(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task], timeout=FOLLOWUP_WAIT)
            raise

    async def _release(self, reservation: Reservation) -> Reservation:
        try:
            return await self.ledger.release(reservation.id, now=self.clock())
        except QuotaGuardError as exc:  # it stays held: counted until its lease ends
            log.warning("release of unsent %s failed: %s", reservation.id, exc)
            return reservation

    async def _mark_in_doubt(
        self, reservation: Reservation, why: str, *, level: int = logging.WARNING
    ) -> Reservation:
        for attempt in range(3):
            try:
                marked = await self.ledger.mark_in_doubt(reservation.id, now=self.clock())
            except QuotaGuardError as exc:
                log.warning(
                    "marking %s in doubt failed (attempt %d): %s", reservation.id, attempt + 1, exc
                )
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            log.log(
                level,
                "reservation %s is in doubt (%s): its hold stays until the watcher resolves "
                "it or release() frees it",
                reservation.id,
                why,
            )
            self.events.in_doubt(marked, why)
            return marked
        log.error(
            "reservation %s could not be marked in doubt; it holds until its lease ends",
            reservation.id,
        )
        return reservation

    async def _bind(
        self, reservation: Reservation, external_id: str, sent_at: datetime
    ) -> Reservation:
        for attempt in range(3):
            try:
                bound = await self.ledger.bind(reservation.id, external_id, sent_at=sent_at)
            except QuotaGuardError as exc:
                log.warning(
                    "bind %s to %s failed (attempt %d): %s",
                    reservation.id,
                    external_id,
                    attempt + 1,
                    exc,
                )
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            self.events.bound(bound)
            return bound
        log.error(
            "reservation %s stays unbound; %s was sent; settle it with settle(%r, actual=...)",
            reservation.id,
            external_id,
            reservation.id,
        )
        return await self._mark_in_doubt(reservation, f"{external_id} was sent but not bound")

    async def _follow_thread(
        self,
        doubt: asyncio.Task[Reservation],
        waiter: asyncio.Future[Any],
        reservation: Reservation,
        work: object,
        adapter: Adapter,
    ) -> None:
        """A send that outlived its caller: after the hold is marked in doubt, wait for the
        thread and bind the job it created, release on a provable refusal, or leave it."""
        await asyncio.wait([doubt])
        try:
            result = await waiter
        except BaseException as exc:
            if provably_unsent(exc):
                await self._release(reservation)
            return
        if _awaitable(result):
            # Its caller is gone, so nobody awaits it; the callable ran: the hold stays in doubt.
            if isinstance(result, types.CoroutineType):
                result.close()
            return
        external_id = adapter.external_id(work, result)
        if external_id is not None:
            await self._bind(reservation, external_id, self.clock())
