"""IBM figures outside their domain are a provider error, never a credit.

Negative consumed seconds, a negative limit, negative job usage, a usage period or a session
that starts in the future: the client raises :class:`MalformedPayload` (a ``ProviderError``)
naming the wire field, and the guard treats it as it treats any provider failure: the fail
mode decides. End to end, against the emulator's IBM half.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard import BudgetExceeded, BudgetUnavailable, MemoryLedger, ProviderError
from quotaguard.errors import MalformedPayload
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.client import IBMRuntimeClient
from quotaguard.ibm.work import IBMJob
from quotaguard.testing import Emulator, FakeClock
from quotaguard.testing.ibm.state import IBMInstanceState
from tests._support.secrets import IBM_TEST_API_KEY

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/dom-acct:dom-inst::"
BACKEND = "ibm_domain"


@pytest.fixture
def instance(emulator: Emulator) -> IBMInstanceState:
    emulator.ibm.add_api_key(IBM_TEST_API_KEY, "dom-acct")
    return emulator.ibm.add_instance(CRN, limit_seconds=3600, backends=[BACKEND])


@pytest.fixture
async def ibm(
    emulator: Emulator, clock: FakeClock, instance: IBMInstanceState
) -> AsyncIterator[IBMRuntimeClient]:
    async with IBMRuntimeClient(
        IBM_TEST_API_KEY, CRN, base_url=f"{emulator.url}/api", iam_url=emulator.url, clock=clock
    ) as client:
        yield client


class Sends:
    def __init__(self, ibm: IBMRuntimeClient) -> None:
        self.ibm = ibm
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        return await self.ibm.run_job("sampler", BACKEND, {}, max_execution_time=60)


@pytest.mark.parametrize(
    ("field", "consumed", "limit"),
    [
        ("$.usage_consumed_seconds", Decimal(-100), Decimal(3600)),
        ("$.usage_limit_seconds", Decimal(0), Decimal(-5)),
    ],
)
async def test_negative_usage_figures_are_malformed(
    ibm: IBMRuntimeClient,
    instance: IBMInstanceState,
    field: str,
    consumed: Decimal,
    limit: Decimal,
) -> None:
    instance.consumed_seconds, instance.limit_seconds = consumed, limit
    with pytest.raises(MalformedPayload) as info:
        await ibm.get_usage()
    assert isinstance(info.value, ProviderError)
    assert info.value.field == field


async def test_negative_instance_limit_is_malformed(
    ibm: IBMRuntimeClient, instance: IBMInstanceState
) -> None:
    instance.limit_seconds = Decimal(-1)
    with pytest.raises(MalformedPayload) as info:
        await ibm.get_instance()
    assert info.value.field in ("$.instance_limit", "$.instance_limit_seconds")


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
async def test_negative_consumed_seconds_never_admit_more(
    ibm: IBMRuntimeClient, instance: IBMInstanceState, clock: FakeClock, fail_mode: str
) -> None:
    # 3,550 of 3,600 s are used: a 60 s job does not fit. IBM then reports -100 s consumed.
    instance.consumed_seconds = Decimal(3550)
    ledger = MemoryLedger()
    send = Sends(ibm)
    async with BudgetGuard(ledger, ibm=ibm, clock=clock, fail_mode=fail_mode) as guard:
        await guard.sync()
        instance.consumed_seconds = Decimal(-100)
        clock.advance(minutes=11)  # past state_ttl and max_staleness: the next read must refresh
        with pytest.raises((BudgetExceeded, BudgetUnavailable)) as info:
            await guard.submit(IBMJob(BACKEND, 60), send)
        state = await ledger.state(f"ibm:{CRN}", now=clock())
    assert send.count == 0
    assert await ledger.outstanding() == []
    assert state.used >= Decimal(3550)  # the -100 s report was never recorded
    if fail_mode == "closed":
        assert isinstance(info.value, BudgetUnavailable)
        assert isinstance(info.value.__cause__, MalformedPayload)


async def test_negative_consumed_seconds_on_first_read_fail_closed(
    ibm: IBMRuntimeClient, instance: IBMInstanceState, clock: FakeClock
) -> None:
    instance.consumed_seconds = Decimal(-100)
    ledger = MemoryLedger()
    send = Sends(ibm)
    async with BudgetGuard(ledger, ibm=ibm, clock=clock) as guard:
        with pytest.raises(BudgetUnavailable) as info:
            await guard.submit(IBMJob(BACKEND, 60), send)
    assert send.count == 0
    assert await ledger.outstanding() == []
    assert await ledger.budgets() == []
    assert "usage_consumed_seconds" in str(info.value)


async def test_a_usage_period_from_the_future_is_a_provider_error(
    ibm: IBMRuntimeClient, instance: IBMInstanceState, clock: FakeClock
) -> None:
    now = clock()
    instance.usage_period = (now + timedelta(days=2), now + timedelta(days=30))
    send = Sends(ibm)
    async with BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock) as guard:
        with pytest.raises(BudgetUnavailable) as info:
            await guard.submit(IBMJob(BACKEND, 60), send)
    assert send.count == 0
    assert isinstance(info.value.__cause__, MalformedPayload)
    assert info.value.__cause__.field == "$.usage_period.start_time"


async def test_a_session_started_in_the_future_gives_no_extra_time(
    emulator: Emulator, ibm: IBMRuntimeClient, clock: FakeClock
) -> None:
    # A 600 s session that IBM says starts in an hour would leave 4,200 s if taken at face value.
    emulator.ibm.add_session("s-future", CRN, backend=BACKEND, max_ttl=600)
    emulator.ibm.sessions["s-future"].started_at = clock() + timedelta(hours=1)
    send = Sends(ibm)
    async with BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock) as guard:
        with pytest.raises((BudgetUnavailable, BudgetExceeded)):
            await guard.submit(IBMJob(BACKEND, 900, session_id="s-future"), send)
    assert send.count == 0


async def test_negative_job_usage_is_not_committed(
    emulator: Emulator, ibm: IBMRuntimeClient, clock: FakeClock
) -> None:
    ledger = MemoryLedger()
    async with BudgetGuard(ledger, ibm=ibm, clock=clock) as guard:
        sub = await guard.submit(IBMJob(BACKEND, 60), Sends(ibm))
        emulator.ibm.complete_job(str(sub.external_id), 10)
        emulator.ibm.jobs[str(sub.external_id)].quantum_seconds = Decimal(-30)
        with pytest.raises(MalformedPayload) as info:
            await guard.settle(sub)
        assert info.value.field.startswith("$.usage.")
        held = await ledger.get(sub.id)
    assert held.state.value == "held"
