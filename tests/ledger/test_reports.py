"""Provider reports on every backend: a report that covers sent work (Braket's totalSpend +
queuedSpend) holds the holds sent before its read started; one that does not (IBM's usage)
holds none. ``used`` is never below the last report while it counts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from quotaguard.engine import BudgetState, Unit
from quotaguard.engine.model import Budget
from quotaguard.ledger import Ledger
from tests._support.ledger import usd
from tests._support.times import T0

SEC = timedelta(seconds=1)
LIMIT = Decimal(50)


async def _held(ledger: Ledger, amount: str, *, sent: object = T0) -> str:
    decision = await ledger.reserve([usd("a", amount)], now=T0)
    assert decision.reservation is not None
    rid = decision.reservation.id
    if sent is not None:
        await ledger.bind(rid, f"task-{rid}", sent_at=sent)  # type: ignore[arg-type]
    return rid


async def _state(ledger: Ledger, now: object = None) -> BudgetState:
    return await ledger.state("a", now=T0 + 10 * SEC if now is None else now)  # type: ignore[arg-type]


async def _setup(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, LIMIT))


async def test_a_hold_sent_before_a_covering_report_is_counted_once(ledger: Ledger) -> None:
    await _setup(ledger)
    rid = await _held(ledger, "8.30")
    await ledger.record_report("a", Decimal("8.30"), at=T0 + SEC, covers_sent=True)
    state = await _state(ledger)
    assert (state.used, state.remaining, state.reserved) == (
        Decimal("8.3"),
        Decimal("41.7"),
        Decimal("8.3"),
    )
    assert state.inside_report == Decimal("8.3") and state.covers_sent
    # The reserve path reads the same figure: exactly what is left fits, one micro more not.
    assert not (await ledger.reserve([usd("a", "41.700001")], now=T0 + 2 * SEC)).admitted
    assert (await ledger.reserve([usd("a", "41.70")], now=T0 + 2 * SEC)).admitted
    await ledger.release(rid, now=T0 + 3 * SEC)  # it failed: Braket's figure still holds it
    state = await _state(ledger)
    assert state.used == Decimal(50) and state.inside_report == 0


async def test_a_hold_sent_during_the_read_counts_on_top(ledger: Ledger) -> None:
    await _setup(ledger)
    await _held(ledger, "8.30", sent=T0 + SEC)  # completed at the instant the read started
    await _held(ledger, "1", sent=None)  # never bound: not provably inside anything
    await ledger.record_report("a", Decimal("8.30"), at=T0 + SEC, covers_sent=True)
    state = await _state(ledger)
    assert state.used == Decimal("17.6") and state.inside_report == 0


async def test_a_commit_of_work_sent_before_the_report_is_not_counted_again(
    ledger: Ledger,
) -> None:
    await _setup(ledger)
    before = await _held(ledger, "8.30")
    after = await _held(ledger, "5", sent=T0 + 2 * SEC)
    await ledger.record_report("a", Decimal("8.30"), at=T0 + SEC, covers_sent=True)
    assert (await _state(ledger)).used == Decimal("13.3")
    await ledger.commit(before, now=T0 + 5 * SEC)  # in the report already (queued, now total)
    await ledger.commit(after, [usd("a", 4)], now=T0 + 6 * SEC)  # sent after: on top
    state = await _state(ledger)
    assert (state.used, state.committed, state.reserved) == (Decimal("12.3"), Decimal("12.3"), 0)


async def test_a_late_bind_moves_a_hold_into_and_out_of_the_report(ledger: Ledger) -> None:
    await _setup(ledger)
    rid = await _held(ledger, "8.30", sent=None)
    await ledger.record_report("a", Decimal("8.30"), at=T0 + SEC, covers_sent=True)
    assert (await _state(ledger)).used == Decimal("16.6")  # unbound: counted twice
    await ledger.bind(rid, "task-1", sent_at=T0)  # bound late, sent before the read
    assert (await _state(ledger)).used == Decimal("8.3")
    await ledger.bind(rid, "task-1", sent_at=T0 + 2 * SEC)  # a rebind: sent after it
    assert (await _state(ledger)).used == Decimal("16.6")
    await ledger.bind(rid, "task-1")  # no send time: the one recorded stays
    assert (await _state(ledger)).used == Decimal("16.6")


async def test_a_lapsed_hold_leaves_the_report_standing(ledger: Ledger) -> None:
    await _setup(ledger)
    await _held(ledger, "8.30")
    await ledger.record_report("a", Decimal("10"), at=T0 + SEC, covers_sent=True)
    assert (await _state(ledger)).used == Decimal(10)
    state = await _state(ledger, T0 + timedelta(hours=2))  # the lease (1 h) ran out
    assert (state.used, state.reserved, state.inside_report) == (Decimal(10), 0, 0)


async def test_a_report_that_does_not_cover_sent_work_holds_none_of_it(ledger: Ledger) -> None:
    await _setup(ledger)
    early = await _held(ledger, "8.30")
    await _held(ledger, "2", sent=None)
    await ledger.record_report("a", Decimal("8.30"), at=T0 + SEC, covers_sent=True)
    assert (await _state(ledger)).used == Decimal("10.3")
    # A newer report of finished work only: every hold counts on top, and so does a
    # commit dated after it, whenever its work was sent.
    await ledger.record_report("a", Decimal(3), at=T0 + 2 * SEC)
    state = await _state(ledger)
    assert (state.used, state.inside_report, state.covers_sent) == (Decimal("13.3"), 0, False)
    await ledger.commit(early, now=T0 + 3 * SEC)
    assert (await _state(ledger)).used == Decimal("13.3")
    # An older covering report never replaces it.
    await ledger.record_report("a", Decimal(40), at=T0 + SEC, covers_sent=True)
    assert (await _state(ledger)).reported == Decimal(3)


async def test_the_floor_never_drops_below_a_covering_report(ledger: Ledger) -> None:
    await _setup(ledger)
    ids = [await _held(ledger, "5", sent=T0 + i * SEC) for i in range(4)]
    await ledger.record_report("a", Decimal(12), at=T0 + 2 * SEC, covers_sent=True)
    assert (await _state(ledger)).inside_report == Decimal(10)  # the two sent before
    for i, rid in enumerate(ids):
        if i % 2:
            await ledger.release(rid, now=T0 + 5 * SEC)
        else:
            await ledger.commit(rid, [usd("a", 0)], now=T0 + 5 * SEC)
        assert (await _state(ledger)).used >= Decimal(12)
