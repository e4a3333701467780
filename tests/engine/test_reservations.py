"""The reservation state table, pure: every (state, event) pair, keys, what is owed, misfits."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotaguard.engine import Charge, ReservationState, Unit
from quotaguard.engine.reservations import (
    STAY,
    Event,
    Misfit,
    Step,
    charges_key,
    keeps_key,
    misfit,
    owed,
    same_charges,
    step,
)

HELD, COMMITTED, RELEASED, EXPIRED = (
    ReservationState.HELD,
    ReservationState.COMMITTED,
    ReservationState.RELEASED,
    ReservationState.EXPIRED,
)

#: Every pair that changes something; every other pair is STAY.
MOVES = {
    (HELD, Event.COMMIT): Step(COMMITTED, unhold=True),
    (HELD, Event.RELEASE): Step(RELEASED, unhold=True),
    (HELD, Event.EXPIRE): Step(EXPIRED, unhold=True),
    (HELD, Event.RENEW): Step(HELD),
    (HELD, Event.DOUBT): Step(HELD),
    (EXPIRED, Event.COMMIT): Step(COMMITTED),
}


def usd(budget: str, amount: int | str) -> Charge:
    return Charge(budget, Decimal(amount), Unit.USD)


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(ReservationState, Event)), ids=str
)
def test_every_pair_of_the_table(state: ReservationState, event: Event) -> None:
    assert step(state, event) == MOVES.get((state, event), STAY)


def test_committed_and_released_are_final() -> None:
    for state, event in itertools.product((COMMITTED, RELEASED), Event):
        assert step(state, event).to is None


def test_a_commit_after_expiry_records_without_letting_go_twice() -> None:
    late = step(EXPIRED, Event.COMMIT)
    assert (late.to, late.unhold) == (COMMITTED, False)  # the hold went at expiry
    assert step(EXPIRED, Event.RELEASE) is STAY
    assert step(EXPIRED, Event.RENEW) is STAY


@given(st.lists(st.sampled_from(list(Event)), max_size=12))
def test_any_history_lets_the_hold_go_once_and_ends_once(events: list[Event]) -> None:
    state, unholds, ends, first_end = HELD, 0, 0, None
    for event in events:
        change = step(state, event)
        if change.to is None:
            continue
        unholds += change.unhold
        if change.to is not HELD:
            ends += 1
            first_end = first_end or change.to
        state = change.to
    assert unholds == (state is not HELD)
    # The only second end is the commit of an expired reservation (its work ran).
    assert ends <= 1 or (first_end, state, ends) == (EXPIRED, COMMITTED, 2)


# ``sent``: the work may have been sent (bound to a job or task, or in doubt).
@pytest.mark.parametrize(
    ("state", "sent", "keeps"),
    [
        (HELD, False, True),
        (HELD, True, True),
        (COMMITTED, False, True),
        (COMMITTED, True, True),
        (RELEASED, False, False),
        (RELEASED, True, False),
        (EXPIRED, False, False),  # nothing was sent: a retry may send it
        (EXPIRED, True, True),  # sent: a retry must replay, not send again
    ],
)
def test_which_states_keep_the_idempotency_key(
    state: ReservationState, sent: bool, keeps: bool
) -> None:
    assert keeps_key(state, sent) is keeps


def test_only_expired_work_that_may_have_been_sent_is_owed() -> None:
    owing = {(s, b) for s in ReservationState for b in (False, True) if owed(s, b)}
    assert owing == {(EXPIRED, True)}


def test_charges_compare_by_their_micro_units() -> None:
    # One key, Decimal('1.0') then Decimal('1.00'): a replay on every backend, never a conflict.
    assert same_charges((usd("a", "1.0"), usd("b", 2)), (usd("b", "2.000"), usd("a", "1.00")))
    assert charges_key((usd("a", "1E+1"),)) == [("a", "USD", 10_000_000)]
    assert charges_key((usd("b", 1), usd("a", "0.0000001"))) == [
        ("a", "USD", 1),  # rounded up, as it is held
        ("b", "USD", 1_000_000),
    ]


def test_same_charges_ignores_order_but_not_count_or_amount() -> None:
    a, b = usd("a", 1), usd("b", 2)
    assert same_charges((a, b), (b, a))
    assert not same_charges((a, b), (a, b, a))
    assert not same_charges((a, a, b), (a, b, b))
    assert not same_charges((a,), (usd("a", 2),))
    assert not same_charges((a,), (Charge("a", Decimal(1), Unit.SECONDS),))


def test_misfit_names_the_first_actual_charge_a_commit_may_not_record() -> None:
    held = (usd("a", 5), Charge("s", Decimal(9), Unit.SECONDS))
    assert misfit((), held) is None
    assert misfit((usd("a", 50), usd("a", 1)), held) is None  # more than held, same budget
    assert misfit((usd("a", 1), "x"), held) == (1, Misfit.TYPE)
    assert misfit((usd("a", 1), usd("b", 1), "x"), held) == (1, Misfit.BUDGET)
    assert misfit((Charge("a", Decimal(1), Unit.SECONDS),), held) == (0, Misfit.UNIT)
