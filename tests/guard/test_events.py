"""Events: a scripted run against the emulator, the subscription API, and their log records."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import attrs
import pytest

from quotaguard import Budget, BudgetExceeded, MemoryLedger, Unit
from quotaguard.braket.client import BraketClient
from quotaguard.braket.work import BraketTask
from quotaguard.engine.model import Estimate
from quotaguard.guard import BudgetGuard
from quotaguard.guard.events import (
    Admitted,
    Bound,
    Event,
    FailOpen,
    InDoubt,
    Lapsed,
    LeasesRenewed,
    ProviderRefreshed,
    Rejected,
    Settled,
)
from quotaguard.testing import Emulator, FakeClock
from quotaguard.testing.seed import DemoSeed
from tests._support.braket import ACTION
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget
from tests._support.secrets import GUARD_AWS_SECRET_KEY

TEAM = "team:q"


async def test_a_scripted_run_emits_one_event_per_step(
    braket: tuple[BraketClient, DemoSeed],
    emulator: Emulator,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, seed = braket
    caplog.set_level(logging.DEBUG, "quotaguard.events")
    seen: list[Event] = []
    async with BudgetGuard(MemoryLedger(), braket=client, clock=clock, fail_mode="open") as guard:
        unsubscribe = guard.on_event(seen.append)
        # 7 tasks of $1.10 ($0.30 + 10 shots x $0.08) fit the team's $7.70; 3 more do not.
        await guard.add_budget(Budget(TEAM, Unit.USD, Decimal("7.70")))
        subs, refused = [], []
        for n in range(10):
            if n == 6:  # Braket's limits are unreachable, and the cached ones too old
                emulator.faults.add("braket.SearchSpendingLimits", status=500, times=50)
                clock.advance(seconds=700)
            if n == 7:
                emulator.faults.clear()
            task = BraketTask(seed.device_arn, shots=10)

            async def send(task: BraketTask = task, n: int = n) -> object:
                return await client.create_quantum_task(
                    task.device_arn, ACTION, task.effective_shots, "amazon-braket-test", f"t/{n}"
                )

            try:
                subs.append(await guard.submit(task, send, budgets=[TEAM]))
            except BudgetExceeded as exc:
                refused.append(exc)
        await guard.settle(subs[0], actual=Decimal("0.5"))
        unsubscribe()
        await guard.settle(subs[1], actual=Decimal("0.5"))  # nobody subscribed: not seen
    kinds = [e.kind for e in seen]
    assert (len(subs), len(refused)) == (7, 3)
    assert kinds.count("admitted") == 7 and kinds.count("bound") == 7
    rejected = [e for e in seen if isinstance(e, Rejected)]
    assert [(e.rules, e.budgets, e.provider) for e in rejected] == [
        (("budget.remaining",), (TEAM,), "braket")
    ] * 3
    assert rejected[0].requested[TEAM] == "1.10"
    fail_open = [e for e in seen if isinstance(e, FailOpen)]
    braket_key = f"braket:{seed.device_arn}"
    assert [(e.budget, e.provider) for e in fail_open] == [(braket_key, "braket")]
    admitted = [e for e in seen if isinstance(e, Admitted)]
    assert admitted[0].amounts == {braket_key: "1.10", TEAM: "1.10"}
    bound = [e for e in seen if isinstance(e, Bound)]
    assert [e.reservation_id for e in bound] == [s.id for s in subs]
    assert bound[0].external_id == subs[0].external_id
    settled = [e for e in seen if isinstance(e, Settled)]
    assert [(e.reservation_id, e.reserved, e.actual) for e in settled] == [
        (subs[0].id, {braket_key: "1.10", TEAM: "1.10"}, {braket_key: "0.5", TEAM: "0.5"})
    ]
    refreshes = [e for e in seen if isinstance(e, ProviderRefreshed)]
    assert refreshes[0].source == braket_key and refreshes[0].age_seconds is None
    assert [e.age_seconds for e in refreshes[1:]] == [700.0]  # the refresh after the outage
    # One record per event on the quotaguard.events logger, fields under stable names.
    records = [r for r in caplog.records if r.name == "quotaguard.events"]
    by_kind = [getattr(r, "qg_kind", None) for r in records]
    assert by_kind.count("rejected") == 3 and by_kind.count("fail_open") == 1
    assert by_kind.count("settled") == 2  # the log does not depend on subscribers
    record = next(r for r in records if getattr(r, "qg_kind", None) == "rejected")
    assert record.levelno == logging.INFO
    assert record.qg_rules == ["budget.remaining"] and record.qg_budgets == [TEAM]  # type: ignore[attr-defined]
    assert "AKIDTEST" not in caplog.text and GUARD_AWS_SECRET_KEY not in caplog.text


class StaleToy(ToyAdapter):
    """Its provider state is always unavailable: every admission fails open."""

    async def estimate(self, work: Work, *, now: datetime, fail_open: bool) -> Estimate:
        estimate = await super().estimate(work, now=now, fail_open=fail_open)
        return attrs.evolve(estimate, fail_open=(self.key,))


async def test_fail_open_is_an_event_every_time_and_a_log_record_per_interval(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard")
    toy = StaleToy()
    seen: list[Event] = []
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock, fail_mode="open") as g:
        await add_toy_budget(g, "100")
        g.on_event(seen.append)
        for n in range(5):
            await g.submit(Work(Decimal(1)), lambda n=n: Job(f"toy-{n}"))
            clock.advance(seconds=20)  # 5 in 100 s: records at 0 s and 60 s
    assert sum(isinstance(e, FailOpen) for e in seen) == 5
    records = [r for r in caplog.records if getattr(r, "qg_kind", None) == "fail_open"]
    assert [r.qg_suppressed for r in records] == [0, 2]  # type: ignore[attr-defined]
    assert "2 more since the last record" in records[1].getMessage()


async def test_a_raising_subscriber_is_logged_and_admission_goes_on(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard.events")
    toy = ToyAdapter()
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("pager down")

    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock) as guard:
        await add_toy_budget(guard, "10")
        guard.on_event(broken)
        guard.on_event(lambda e: seen.append(e.kind))
        sub = await guard.submit(Work(Decimal(1)), lambda: Job("toy-1"))
    assert sub.external_id == "toy-1"
    assert seen == ["admitted", "bound"]
    failures = [r for r in caplog.records if "subscriber" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None
    with pytest.raises(Exception, match="callable"):
        guard.on_event("not a function")  # type: ignore[arg-type]


async def test_watcher_events_and_the_async_iterator(clock: FakeClock) -> None:
    toy = ToyAdapter()
    lease = timedelta(minutes=10)
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock, lease=lease) as guard:
        await add_toy_budget(guard, "10")
        stream = guard.events()
        a = await guard.submit(Work(Decimal(2)), lambda: Job("toy-a"))
        b = await guard.submit(Work(Decimal(1)), lambda: object())  # no job id: in doubt
        toy.actuals["toy-a"] = None  # still running
        clock.advance(seconds=400)
        await guard.watch_once()  # both leases due (under half left): one renewal batch
        clock.advance(minutes=30)  # nobody watched: both leases ran out
        toy.actuals["toy-a"] = Decimal("1.5")
        await guard.watch_once()
        await stream.aclose()
        events = [e async for e in stream]
    kinds = [e.kind for e in events]
    assert kinds[:4] == ["admitted", "bound", "admitted", "in_doubt"]
    in_doubt = next(e for e in events if isinstance(e, InDoubt))
    assert in_doubt.reservation_id == b.id and "no job id" in in_doubt.reason
    renewal = next(e for e in events if isinstance(e, LeasesRenewed))
    assert (renewal.due, renewal.renewed) == (2, 2)
    lapsed = [e for e in events if isinstance(e, Lapsed)]
    assert {e.reservation_id for e in lapsed} >= {a.id}
    settled = [e for e in events if isinstance(e, Settled)]
    assert settled[0].reservation_id == a.id and settled[0].actual == {"toy:device": "1.5"}


async def test_no_event_is_built_when_logging_is_off_and_nobody_listens(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import quotaguard.guard.events as events

    built: list[str] = []
    base = events.Event
    for name in events.__all__:  # the hub builds events by these module names
        cls = getattr(events, name)
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base:

            class Recording(cls):  # type: ignore[valid-type,misc]
                def __init__(self, *args: object, **kwargs: object) -> None:
                    built.append(self.kind)
                    super().__init__(*args, **kwargs)

            monkeypatch.setattr(events, name, Recording)
    logging.getLogger("quotaguard.events").setLevel(logging.CRITICAL)
    try:
        toy = ToyAdapter()
        async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock) as guard:
            await add_toy_budget(guard, "1")
            await guard.submit(Work(Decimal(1)), lambda: Job("toy-1"))
            with pytest.raises(BudgetExceeded):
                await guard.submit(Work(Decimal(1)), lambda: Job("toy-2"))
            assert built == []
            guard.on_event(lambda e: None)
            with pytest.raises(BudgetExceeded):
                await guard.submit(Work(Decimal(1)), lambda: Job("toy-3"))
            assert built == ["rejected"]
    finally:
        logging.getLogger("quotaguard.events").setLevel(logging.NOTSET)


def test_events_are_hashable_frozen_values_with_stable_kinds() -> None:
    from quotaguard.guard import events

    at = datetime(2026, 12, 1, tzinfo=UTC)
    one = Admitted(at=at, reservation_id="rsv_1", provider="toy", amounts={"a": "1"})
    assert one == Admitted(at=at, reservation_id="rsv_1", provider="toy", amounts={"a": "1"})
    assert len({one, one}) == 1
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        one.provider = "x"  # type: ignore[misc]
    kinds = {
        getattr(events, name).kind
        for name in events.__all__
        if isinstance(getattr(events, name), type)
        and issubclass(getattr(events, name), Event)
        and getattr(events, name) is not Event
    }
    assert kinds == {
        "admitted", "rejected", "fail_open", "in_doubt", "bound", "settled",
        "leases_renewed", "lapsed", "provider_refreshed", "alert_crossed",
    }  # fmt: skip
    assert one.fields()["qg_amounts"] == {"a": "1"} and one.fields()["qg_at"] == at.isoformat()
