"""Provider faults through the emulator, against a real BudgetGuard with real clients.

One table: each row is a fault on one provider and what the guard must do about it. The
same table is in docs/reliability.md ("Provider faults"); keep the two in sync.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Literal

import attrs
import pytest

from quotaguard import BudgetUnavailable, MemoryLedger, ProviderError
from quotaguard.braket.work import BraketTask
from quotaguard.errors import MalformedPayload
from quotaguard.guard import BudgetGuard, Submission
from quotaguard.ibm.work import IBMJob
from tests._support.braket import FORTE
from tests._support.reliability import ATTEMPTS, BACKEND, TIMEOUT, World

STATE = {"ibm": "ibm.get_usage", "braket": "braket.SearchSpendingLimits"}
SEND = {"ibm": "ibm.create_job", "braket": "braket.CreateQuantumTask"}
SLOW = TIMEOUT * 2.5  # an emulator delay longer than the client's timeout
TTL = timedelta(seconds=60)
MAX_STALENESS = timedelta(minutes=10)

Expect = Literal["admitted", "unavailable", "send_failed", "send_refused"]


@attrs.frozen
class Case:
    id: str
    provider: Literal["ibm", "braket"]
    fault: str
    outcome: str  # the docs table's wording
    expect: Expect
    inject: Callable[[World, str], None]
    fail_mode: Literal["closed", "open"] = "closed"
    #: Submit once first (fills the state cache), then move the clock this far, then inject.
    primed: timedelta | None = None
    #: Requests to the provider-state route this case must cost (after priming).
    state_calls: int | None = None
    check: Callable[[World, Outcome], None] | None = None


@attrs.define
class Outcome:
    result: Submission | BaseException
    state_calls: int
    sends: int
    warnings: int


def fault(route: str = "state", **kwargs: object) -> Callable[[World, str], None]:
    def inject(world: World, provider: str) -> None:
        name = STATE[provider] if route == "state" else SEND[provider]
        world.emu.faults.add(name, **kwargs)  # type: ignore[arg-type]

    return inject


def revoke(world: World, provider: str) -> None:
    world.emu.ibm.revoke_tokens()


def nothing(world: World, provider: str) -> None:
    return None


def slept_retry_after(world: World, outcome: Outcome) -> None:
    assert world.sleeps.delays == [7.0]  # the server's Retry-After, not the backoff


def exchanged_twice(world: World, outcome: Outcome) -> None:
    assert world.ibm.token_exchanges == 2


def names_the_field(world: World, outcome: Outcome) -> None:
    assert isinstance(outcome.result, BudgetUnavailable)
    cause = outcome.result.__cause__
    assert isinstance(cause, MalformedPayload)
    assert cause.field.startswith("$")


EVERY = ATTEMPTS  # a fault on every attempt the client makes
EXPIRED_403 = {
    "status": 403,
    "body": '{"message": "The security token included in the request is expired"}',
    "headers": {"x-amzn-ErrorType": "ExpiredTokenException"},
    "times": 5,
}


def both(case_id: str, fault_text: str, outcome: str, expect: Expect, **kw: object) -> list[Case]:
    return [
        Case(f"{p}-{case_id}", p, fault_text, outcome, expect, **kw)  # type: ignore[arg-type]
        for p in ("ibm", "braket")
    ]


CASES: list[Case] = [
    *both("500-once", "500 once", "retried, then admitted", "admitted",
          inject=fault(status=500), state_calls=2),
    *both("503-always", "503 on every attempt", "fail_mode closed: BudgetUnavailable, nothing sent",
          "unavailable", inject=fault(status=503, times=EVERY), state_calls=EVERY),
    *both("503-open", "503 on every attempt", "fail_mode open: admitted, one warning logged",
          "admitted", inject=fault(status=503, times=2 * EVERY), fail_mode="open"),
    Case("ibm-429", "ibm", "429 with Retry-After: 7", "retried after the server's Retry-After "
         "(7 s), then admitted", "admitted", fault(status=429, headers={"Retry-After": "7"}),
         state_calls=2, check=slept_retry_after),
    Case("braket-429", "braket", "429 with Retry-After", "retried (Retry-After, capped by the "
         "RetryPolicy), then admitted", "admitted",
         fault(status=429, headers={"Retry-After": "7", "x-amzn-ErrorType":
                                    "ThrottlingException"}), state_calls=2),
    *both("timeout-once", "timeout once (delay > client timeout)", "retried, then admitted",
          "admitted", inject=fault(delay=SLOW), state_calls=2),
    *both("timeout-always", "timeout on every attempt", "fail_mode closed: BudgetUnavailable, "
          "nothing sent", "unavailable", inject=fault(delay=SLOW, times=EVERY),
          state_calls=EVERY),
    *both("malformed-json", "200 with a body that is not JSON", "BudgetUnavailable (cause: "
          "MalformedPayload), nothing sent", "unavailable",
          inject=fault(status=200, body="<html>oops"), state_calls=1, check=names_the_field),
    *both("malformed-shape", "200 with JSON of the wrong shape", "BudgetUnavailable (cause: "
          "MalformedPayload naming the field), nothing sent", "unavailable",
          inject=fault(status=200, body='{"usage_consumed_seconds": "lots", "spendingLimits": 7}'),
          state_calls=1, check=names_the_field),
    *both("stale-ok", "503 on every attempt, cached state younger than max_staleness",
          "served from cached state, admitted", "admitted",
          inject=fault(status=503, times=EVERY), primed=TTL + timedelta(seconds=1),
          state_calls=EVERY),
    *both("stale-too-old", "503 on every attempt, cached state older than max_staleness",
          "fail_mode closed: BudgetUnavailable, nothing sent", "unavailable",
          inject=fault(status=503, times=EVERY), primed=MAX_STALENESS + timedelta(seconds=1),
          state_calls=EVERY),
    Case("ibm-revoked", "ibm", "token revoked (401)", "token refreshed once, request repeated, "
         "admitted", "admitted", revoke, primed=TTL + timedelta(seconds=1), state_calls=2,
         check=exchanged_twice),
    Case("ibm-expired", "ibm", "token expired (clock past its exp)", "new token before the "
         "call, admitted", "admitted", nothing, primed=timedelta(hours=2), state_calls=1,
         check=exchanged_twice),
    Case("braket-expired", "braket", "403 ExpiredTokenException", "not retried; fail_mode "
         "closed: BudgetUnavailable, nothing sent", "unavailable", fault(**EXPIRED_403),
         state_calls=1),
    Case("ibm-send-503", "ibm", "503 on job submission (POST /jobs)", "not retried (no "
         "idempotency token); error raised, hold kept in doubt (the job may exist)",
         "send_failed", fault("send", status=503)),
    Case("ibm-send-400", "ibm", "400 on job submission (POST /jobs)", "a definite refusal: "
         "error raised, hold released", "send_refused", fault("send", status=400)),
    Case("braket-send-500", "braket", "500 on CreateQuantumTask", "retried with the same "
         "clientToken, one task created, admitted", "admitted", fault("send", status=500)),
]  # fmt: skip


@pytest.fixture
async def guard_for(world: World) -> AsyncIterator[Callable[[str], BudgetGuard]]:
    made: list[BudgetGuard] = []

    def make(fail_mode: str) -> BudgetGuard:
        guard = BudgetGuard(
            MemoryLedger(),
            ibm=world.ibm,
            braket=world.braket,
            fail_mode=fail_mode,  # type: ignore[arg-type]
            clock=world.clock,
            state_ttl=TTL,
            max_staleness=MAX_STALENESS,
        )
        made.append(guard)
        return guard

    yield make
    for guard in made:
        await guard.aclose()
        await guard.ledger.aclose()


async def submit(world: World, guard: BudgetGuard, provider: str) -> Submission:
    if provider == "ibm":
        return await guard.submit(
            IBMJob(BACKEND, max_execution_time=60),
            lambda: world.ibm.run_job("sampler", BACKEND, {}, max_execution_time=60),
        )
    return await guard.submit(
        BraketTask(FORTE, shots=10),
        lambda: world.braket.create_quantum_task(FORTE, "{}", 10, "bucket", "prefix"),
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_provider_fault(
    case: Case,
    world: World,
    guard_for: Callable[[str], BudgetGuard],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard")
    guard = guard_for(case.fail_mode)
    if case.primed is not None:
        await submit(world, guard, case.provider)
        world.clock.advance(seconds=case.primed.total_seconds())
    case.inject(world, case.provider)
    state0, send0 = world.emu.calls(STATE[case.provider]), world.emu.calls(SEND[case.provider])
    held0 = {r.id for r in await guard.ledger.outstanding()}
    tasks0 = len(world.emu.braket.tasks)
    result: Submission | BaseException
    try:
        result = await submit(world, guard, case.provider)
    except (BudgetUnavailable, ProviderError) as exc:
        result = exc
    if case.fail_mode == "open":  # a second submission: still admitted, no second warning
        await submit(world, guard, case.provider)
    outcome = Outcome(
        result,
        world.emu.calls(STATE[case.provider]) - state0,
        world.emu.calls(SEND[case.provider]) - send0,
        sum("fail_mode=open" in r.getMessage() for r in caplog.records),
    )
    held = {r.id: r for r in await guard.ledger.outstanding()}
    if case.expect == "admitted":
        assert isinstance(outcome.result, Submission), outcome.result
        submissions = 2 if case.fail_mode == "open" else 1
        assert outcome.sends == (2 if case.id == "braket-send-500" else submissions)
        if case.provider == "braket":  # a retried create made one task, not two
            assert len(world.emu.braket.tasks) - tasks0 == submissions
        assert outcome.result.external_id is not None  # the job id / task ARN
        if outcome.result.id:  # a hold was taken: it is bound to the provider's id
            assert held[outcome.result.id].external_id == outcome.result.external_id
    elif case.expect == "unavailable":
        assert isinstance(outcome.result, BudgetUnavailable), outcome.result
        assert outcome.sends == 0  # nothing sent
        assert set(held) == held0  # nothing held
    else:
        assert isinstance(outcome.result, ProviderError), outcome.result
        assert outcome.result.status == (503 if case.expect == "send_failed" else 400)
        assert outcome.sends == 1  # sent once, not retried
        if case.expect == "send_refused":
            assert set(held) == held0  # refused: nothing was created, the hold released
        else:  # a 5xx may come after the job was created: the hold stays, in doubt
            [doubtful] = [held[r] for r in set(held) - held0]
            assert doubtful.in_doubt and doubtful.external_id is None
    assert outcome.warnings == (1 if case.fail_mode == "open" else 0)
    if case.state_calls is not None:
        assert outcome.state_calls == case.state_calls
    if case.check is not None:
        case.check(world, outcome)
