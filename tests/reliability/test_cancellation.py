"""Cancellation storms: 1,000 guard submissions cancelled at random points.

Each submission's ``submit`` sleeps a random short time; a timer cancels it at a random
moment: before it starts, while the ledger reserves, while the work is being sent, or never.
Afterwards every submission whose send was invoked holds budget: bound to its job id when the
send returned, in doubt when it was cancelled mid-send (it may have reached the provider, so
it counts until resolved; until issue 11 these holds were released, and work a provider had
accepted was then counted zero). A submission cancelled before its send was invoked holds
nothing. Settling the sent ones and releasing the in-doubt ones leaves nothing reserved.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard import Budget, MemoryLedger, SQLiteLedger, Unit
from quotaguard.guard import BudgetGuard
from quotaguard.ledger import Ledger
from tests._support.guard import Job, ToyAdapter, Work
from tests._support.times import T0

STORM = 1_000


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    opened: Ledger = (
        MemoryLedger()
        if request.param == "memory"
        else SQLiteLedger(tmp_path / "storm.sqlite3", time_source="caller")
    )
    async with opened:
        yield opened


async def test_cancelled_submissions_hold_exactly_the_work_that_may_have_been_sent(
    ledger: Ledger,
) -> None:
    rng = random.Random(1121)
    toy = ToyAdapter()
    async with BudgetGuard(ledger, adapters=[toy], clock=lambda: T0) as guard:
        # Room for every submission: a rejection must not hide a leak.
        await guard.add_budget(Budget(toy.key, Unit.USD, Decimal(1_000_000)))
        started: set[int] = set()
        sent: dict[str, Decimal] = {}

        def submitter(i: int, amount: Decimal, pause: float):  # type: ignore[no-untyped-def]
            async def submit() -> Job:
                started.add(i)
                await asyncio.sleep(pause)
                sent[f"toy-{i}"] = amount  # no await after this: sent means returned
                return Job(f"toy-{i}")

            return submit

        tasks = []
        loop = asyncio.get_running_loop()
        for i in range(STORM):
            amount = Decimal(rng.randint(1, 1000)).scaleb(-2)
            task = asyncio.ensure_future(
                guard.submit(Work(amount), submitter(i, amount, rng.uniform(0, 0.05)))
            )
            if rng.random() < 0.85:
                loop.call_later(rng.uniform(0, 0.5), task.cancel)
            tasks.append(task)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)

        cancelled = [i for i, o in enumerate(outcomes) if isinstance(o, asyncio.CancelledError)]
        completed = [o for o in outcomes if not isinstance(o, BaseException)]
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert errors == []
        before_submit = [i for i in cancelled if i not in started]
        during_submit = [i for i in cancelled if i in started and f"toy-{i}" not in sent]
        # The storm hit the send and let some work through; on SQLite (a reserve awaits a
        # thread) it also hit work still waiting for its reserve.
        assert during_submit and completed
        assert before_submit or isinstance(ledger, MemoryLedger)

        outstanding = {r.id: r for r in await ledger.outstanding()}
        bound = {r.external_id: r for r in outstanding.values() if r.external_id is not None}
        doubtful = [r for r in outstanding.values() if r.external_id is None]
        # Work that was sent is bound to its job (a cancel after sending keeps its hold).
        assert set(bound) == set(sent)
        for job_id, amount in sent.items():
            assert bound[job_id].amount_for(toy.key) == amount
        for submission in completed:
            assert submission.external_id in sent  # admitted and not cancelled: bound
            assert outstanding[submission.id].external_id == submission.external_id
        # Cancelled mid-send: each holds in doubt, one per send that started and did not return.
        assert all(r.in_doubt for r in doubtful)
        assert len(doubtful) == len(during_submit)
        assert {r.id for r in await ledger.in_doubt()} == {r.id for r in doubtful}
        unsure = sum((r.amount_for(toy.key) for r in doubtful), Decimal(0))
        state = await ledger.state(toy.key, now=T0)
        assert state.reserved == sum(sent.values()) + unsure
        assert state.in_doubt == len(doubtful)

        # Settle what was sent (half its hold, say) and release what we know was not: then
        # nothing is reserved at all.
        for job_id, amount in sent.items():
            await guard.settle(job_id, actual=amount / 2)
        for reservation in doubtful:
            await guard.release(reservation.id)
        assert await ledger.outstanding() == []
        state = await ledger.state(toy.key, now=T0)
        assert state.reserved == 0
        assert state.committed == sum(sent.values()) / 2
    after_send = len(cancelled) - len(before_submit) - len(during_submit)
    print(
        f"\nstorm: {STORM} submissions, {len(before_submit)} cancelled before submit, "
        f"{len(during_submit)} while sending (held in doubt), {after_send} after sending, "
        f"{len(completed)} completed"
    )
