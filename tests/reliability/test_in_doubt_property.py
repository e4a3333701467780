"""Random programs of submit / cancel / timeout / provider accept-or-refuse / watcher pass /
lease expiry against a guard, with cancellation at every checkpoint of a submission.

The checkpoints: before reserve, during reserve, after reserve before the send is invoked,
during the send before the request is written, after it is written, after the send returns
before bind, during bind. A fake provider records what it accepted (the truth the guard cannot
see). After every step:

- sent work is always counted: held or settled, or released only after a provider report
  that carries it (and ``used`` never drops below what the provider accepted);
- provably unsent work (never invoked, or definitely refused) holds nothing once ``submit``
  has returned or raised (the guard runs its undo first);
- a retry under the key of a held or committed reservation replays it and sends nothing;
- committed + reserved never exceeds the limit.

Sized for 2 cores: a few dozen short programs per backend, on a fake clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quotaguard import Budget, ReservationState, Unit
from quotaguard.engine.model import Reservation
from quotaguard.errors import BadRequest, ProviderUnavailable
from quotaguard.guard import BudgetGuard
from quotaguard.ledger import Ledger
from quotaguard.testing import FakeClock
from tests._support.guard import Job, ToyAdapter, Work
from tests._support.ledger import FACTORIES, MARKS

KEY = "toy:device"
LIMIT = Decimal(5)
BACKENDS = ("memory", "sqlite", "redis")

CHECKPOINTS = (
    "before-reserve",
    "during-reserve",
    "after-reserve",
    "before-write",
    "after-write",
    "after-return",
    "during-bind",
    "none",
)
OUTCOMES = (
    "accept",  # returns the job
    "accept-no-id",  # the provider has it; the send returns nothing recognisable
    "refuse-400",  # a definite refusal: nothing created
    "refuse-connection",  # our client failed before writing: nothing sent
    "5xx-before-accept",  # a 5xx reply; nothing was created, but the guard cannot know
    "5xx-after-accept",  # the job exists, the reply is a 5xx
    "lost-after-accept",  # the job exists, the reply is lost
)
UNSENT_OUTCOMES = ("refuse-400", "refuse-connection")


@attrs.frozen
class Submit:
    kind: str  # "async" | "sync"
    checkpoint: str
    interrupt: str  # "cancel" | "timeout"
    outcome: str


@attrs.frozen
class Tick:
    """Time passes (under half a lease) with the watcher running: expiry, then one pass."""

    minutes: int


@attrs.frozen
class Report:
    """The provider's spend report (everything it accepted), read now."""


@attrs.frozen
class Finish:
    """The n-th accepted job (mod how many) ends at the provider, costing what was held."""

    n: int


@attrs.frozen
class Retry:
    """The n-th submission (mod how many) again, under its own idempotency key."""

    n: int


def submissions(checkpoint: st.SearchStrategy[str]) -> st.SearchStrategy[Submit]:
    return st.builds(
        Submit,
        st.sampled_from(("async", "sync")),
        checkpoint,
        st.sampled_from(("cancel", "timeout")),
        st.sampled_from(OUTCOMES),
    )


# Half the later submissions get through every checkpoint, so programs also build up bound
# and in-doubt holds for the watcher, the reports and the retries to work on.
later = submissions(st.one_of(st.just("none"), st.sampled_from(CHECKPOINTS)))
steps = st.lists(
    st.one_of(
        later,
        later,
        st.builds(Tick, st.integers(1, 29)),
        st.just(Report()),
        st.builds(Finish, st.integers(0, 20)),
        st.builds(Retry, st.integers(0, 20)),
    ),
    min_size=2,
    max_size=12,
)


@attrs.define(eq=False)
class Rec:
    """One submission: its plan, what its send did, and the reservation it got."""

    index: int
    amount: Decimal
    plan: Submit
    invoked: bool = False
    refused: bool = False  # raised a provable refusal before anything was created
    accepted: str | None = None
    in_report: bool = False
    rid: str | None = None
    reached: threading.Event = attrs.Factory(threading.Event)
    gate: threading.Event = attrs.Factory(threading.Event)
    bind_gate: asyncio.Event = attrs.Factory(asyncio.Event)


class Checkpoints:
    """A ledger wrapper that interrupts the current submission at the ledger checkpoints."""

    def __init__(self, ledger: Ledger, world: World) -> None:
        self._ledger = ledger
        self._world = world

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        rec, task = self._world.current, asyncio.current_task()
        checkpoint = rec.plan.checkpoint if rec is not None else "none"
        if checkpoint == "during-reserve" and task is not None:
            asyncio.get_running_loop().call_soon(task.cancel)  # lands while the ledger works
        decision = await self._ledger.reserve(*args, **kwargs)
        if checkpoint == "after-reserve" and task is not None:
            task.cancel()  # asked for as reserve returns: pending when the send is invoked
        return decision

    async def bind(self, *args: Any, **kwargs: Any) -> Reservation:
        rec = self._world.current
        if rec is not None and rec.plan.checkpoint == "during-bind" and not rec.reached.is_set():
            rec.reached.set()
            await rec.bind_gate.wait()
        return await self._ledger.bind(*args, **kwargs)


@attrs.define
class World:
    guard: BudgetGuard
    ledger: Ledger
    clock: FakeClock
    toy: ToyAdapter
    recs: list[Rec] = attrs.Factory(list)
    accepted: list[Rec] = attrs.Factory(list)
    current: Rec | None = None

    # -- the fake provider's sends ----------------------------------------------------------

    def _accept(self, rec: Rec) -> Job:
        rec.accepted = f"toy-{rec.index}"
        self.accepted.append(rec)
        return Job(rec.accepted)

    def _before_write(self, rec: Rec) -> None:
        if rec.plan.outcome == "refuse-connection":
            rec.refused = True
            raise ProviderUnavailable("refused", provider="toy", request_sent=False)
        if rec.plan.outcome == "refuse-400":
            rec.refused = True
            raise BadRequest("no", provider="toy", status=400)
        if rec.plan.outcome == "5xx-before-accept":
            raise ProviderUnavailable("down", provider="toy", status=503)

    def _after_write(self, rec: Rec, job: Job) -> Job | str:
        if rec.plan.outcome == "5xx-after-accept":
            raise ProviderUnavailable("down", provider="toy", status=503)
        if rec.plan.outcome == "lost-after-accept":
            raise ProviderUnavailable("connection reset", provider="toy")
        return job if rec.plan.outcome == "accept" else "accepted"

    def async_send(self, rec: Rec) -> Callable[[], Any]:
        async def pause(name: str) -> None:
            if rec.plan.checkpoint == name:
                rec.reached.set()
                await asyncio.Event().wait()  # until cancelled or timed out
            await asyncio.sleep(0)

        async def send() -> Job | str:
            rec.invoked = True
            await pause("before-write")
            self._before_write(rec)
            job = self._accept(rec)
            await pause("after-write")
            result = self._after_write(rec, job)
            if rec.plan.checkpoint == "after-return":
                task = asyncio.current_task()
                assert task is not None
                task.cancel()  # no await follows: it lands after the send returned
            return result

        return send

    def sync_send(
        self, rec: Rec, loop: asyncio.AbstractEventLoop, task: list[Any]
    ) -> Callable[[], Any]:
        def pause(name: str) -> None:
            if rec.plan.checkpoint == name:
                rec.reached.set()
                rec.gate.wait(5)

        def send() -> Job | str:
            rec.invoked = True
            pause("before-write")
            self._before_write(rec)
            job = self._accept(rec)
            pause("after-write")
            result = self._after_write(rec, job)
            if rec.plan.checkpoint == "after-return":
                loop.call_soon_threadsafe(task[0].cancel)
            return result

        return send

    # -- the steps ----------------------------------------------------------------------------

    async def submit(self, plan: Submit) -> None:
        index = len(self.recs)
        rec = Rec(index, Decimal(100 + index) / 100, plan)  # unique: the amount names the hold
        self.recs.append(rec)
        self.current = rec
        loop = asyncio.get_running_loop()
        holder: list[Any] = []
        send = self.async_send(rec) if plan.kind == "async" else self.sync_send(rec, loop, holder)
        task = asyncio.ensure_future(
            self.guard.submit(Work(rec.amount), send, idempotency_key=f"k{index}")
        )
        holder.append(task)
        if plan.checkpoint == "before-reserve":
            task.cancel()
        elif plan.checkpoint in ("before-write", "after-write", "during-bind"):
            while not (rec.reached.is_set() or task.done()):
                await asyncio.sleep(0.001)
            if rec.reached.is_set() and (
                plan.interrupt == "cancel" or plan.checkpoint == "during-bind"
            ):
                task.cancel()
            await asyncio.sleep(0)
            rec.bind_gate.set()
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
        rec.gate.set()  # a sync send still on its thread goes on; the guard follows it
        rec.bind_gate.set()
        async with asyncio.timeout(10):
            while self.guard._sender._followups:
                await asyncio.sleep(0.001)
        self.current = None
        rid = getattr(outcome, "id", None) or getattr(outcome, "reservation_id", None)
        if isinstance(rid, str) and rid:
            rec.rid = rid

    async def tick(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)
        await self.ledger.expire(now=self.clock())
        await self.guard.watch_once()

    async def report(self) -> None:
        spent = sum((r.amount for r in self.accepted), Decimal(0))
        await self.ledger.record_report(KEY, spent, at=self.clock())
        for rec in self.accepted:
            rec.in_report = True

    async def finish(self, n: int) -> None:
        if self.accepted:
            rec = self.accepted[n % len(self.accepted)]
            assert rec.accepted is not None
            self.toy.actuals[rec.accepted] = rec.amount
        await self.guard.watch_once()

    async def retry(self, n: int) -> None:
        if not self.recs:
            return
        rec = self.recs[n % len(self.recs)]
        if rec.rid is None:
            return
        held = await self.ledger.get(rec.rid)
        if held.state not in (ReservationState.HELD, ReservationState.COMMITTED):
            return  # its key may be free: a retry would send again, by design
        sent: list[str] = []
        sub = await self.guard.submit(
            Work(rec.amount), lambda: sent.append("sent"), idempotency_key=f"k{rec.index}"
        )
        assert sub.replayed and sent == [], "a claimed key sent the work again"

    # -- the invariants -------------------------------------------------------------------------

    async def check(self) -> None:
        now = self.clock()
        state = await self.ledger.state(KEY, now=now)
        assert state.committed + state.reserved <= LIMIT
        accepted = sum((r.amount for r in self.accepted), Decimal(0))
        assert state.used >= accepted, "work the provider accepted is counted zero"
        by_amount = {r.amount: r for r in self.recs}
        for held in await self.ledger.outstanding():
            rec = by_amount[held.amount_for(KEY)]
            rec.rid = rec.rid or held.id
            # Provably unsent work holds nothing once submit has returned or raised.
            assert rec.invoked and not rec.refused, f"unsent {rec.plan} still holds"
        for rec in self.accepted:
            assert rec.rid is not None, f"sent {rec.plan} was never held"
            got = await self.ledger.get(rec.rid)
            if got.state is ReservationState.RELEASED:
                assert rec.in_report, f"sent {rec.plan} released before a report carried it"
            else:
                assert got.state in (ReservationState.HELD, ReservationState.COMMITTED), got


async def run_program(program: list[object], ledger: Ledger) -> None:
    clock, toy = FakeClock(), ToyAdapter()
    world: World
    wrapped: Any = Checkpoints(ledger, None)  # type: ignore[arg-type]
    async with BudgetGuard(
        wrapped,
        adapters=[toy],
        clock=clock,
        submit_timeout=0.05,
        max_in_doubt=timedelta(hours=2),
    ) as guard:
        world = World(guard, ledger, clock, toy)
        wrapped._world = world
        await guard.add_budget(Budget(KEY, Unit.USD, LIMIT))
        for step in program:
            if isinstance(step, Submit):
                await world.submit(step)
            elif isinstance(step, Tick):
                await world.tick(step.minutes)
            elif isinstance(step, Report):
                await world.report()
            elif isinstance(step, Finish):
                await world.finish(step.n)
            elif isinstance(step, Retry):
                await world.retry(step.n)
            await world.check()
        # Whatever is left in doubt resolves: renewed while watched, then released after a
        # report past its lease, or committed past max_in_doubt. Nothing stays forever.
        await world.report()
        for _ in range(6):
            await world.tick(29)
            await world.report()
            await world.check()
        assert await ledger.in_doubt() == []


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
@pytest.mark.parametrize("name", [pytest.param(n, marks=MARKS.get(n, ()), id=n) for n in BACKENDS])
def test_sent_work_is_always_counted_and_unsent_work_never_held(
    name: str, checkpoint: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Each program starts with a submission interrupted at ``checkpoint``."""

    @settings(
        max_examples=20 if name == "memory" else 10,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(first=submissions(st.just(checkpoint)), rest=steps)
    def case(first: Submit, rest: list[object]) -> None:
        async def main() -> None:
            async with FACTORIES[name](request, tmp_path) as ledger:
                await run_program([first, *rest], ledger)

        asyncio.run(main())

    case()
