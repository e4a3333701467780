"""Bad input at the guard's edges: one table across the guard, IBM and Braket public API.

Every case is a caller mistake. Each must raise one :class:`QuotaGuardError` (an
:class:`InvalidInput` naming the field to fix), with nothing held, nothing sent (the send
records its calls; the clients point at a closed loopback port, so a request that went out
would fail as ``ProviderUnavailable``, not as bad input) and nothing written to the ledger.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

from quotaguard import Budget, MemoryLedger, QuotaGuardError, Unit
from quotaguard.braket.client import BraketClient
from quotaguard.braket.pricing import Price, PriceTable
from quotaguard.braket.work import BraketTask
from quotaguard.errors import InvalidInput
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.client import IBMRuntimeClient
from quotaguard.ibm.rules import IBMPolicy
from quotaguard.ibm.work import IBMJob, IBMSession
from quotaguard.testing import FakeClock
from tests._support.guard import Job, ToyAdapter, Work
from tests._support.secrets import IBM_TEST_API_KEY

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct:inst::"
FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
TASK_ARN = "arn:aws:braket:us-east-1:123456789012:quantum-task/abc"
LIMIT_ARN = "arn:aws:braket:us-east-1:123456789012:spending-limit/abc"
# Port 9 (discard) on loopback: nothing listens, so anything sent fails as ProviderUnavailable.
DEAD = "http://127.0.0.1:9"
ACTION = '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}}'


@attrs.define
class Ctx:
    """What a case may use: a guard on a memory ledger, a counting send, dead-end clients."""

    ledger: MemoryLedger
    guard: BudgetGuard
    ibm: IBMRuntimeClient
    braket: BraketClient
    clock: FakeClock
    sends: list[int] = attrs.Factory(list)

    def send(self) -> Job:
        self.sends.append(1)
        return Job("toy-1")

    def guard_with(self, **kwargs: Any) -> BudgetGuard:
        return BudgetGuard(self.ledger, **{"clock": self.clock, **kwargs})


@attrs.frozen
class Case:
    id: str
    run: Callable[[Ctx], object]
    field: str
    error: type[QuotaGuardError] = InvalidInput


def _set(name: str, value: object) -> Callable[[Ctx], object]:
    return lambda c: setattr(c.guard, name, value)


def _watch(**kwargs: Any) -> Callable[[Ctx], object]:
    return lambda c: c.guard.watch(**kwargs)


def _submit(work: object = None, **kwargs: Any) -> Callable[[Ctx], object]:
    return lambda c: c.guard.submit(Work(Decimal(1)) if work is None else work, c.send, **kwargs)


def _check(**kwargs: Any) -> Callable[[Ctx], object]:
    return lambda c: c.guard.check(Work(Decimal(1)), **kwargs)


def _guard(**kwargs: Any) -> Callable[[Ctx], object]:
    return lambda c: c.guard_with(**kwargs)


def _ibm_client(*args: Any, **kwargs: Any) -> Callable[[Ctx], object]:
    kwargs.setdefault("base_url", f"{DEAD}/api")
    kwargs.setdefault("iam_url", DEAD)
    return lambda c: IBMRuntimeClient(*args, **kwargs)


def _naive() -> datetime:
    return datetime(2026, 1, 1)  # naive: the mistake under test


def _gen(*keys: object) -> Iterator[object]:
    yield from keys


CASES = [
    # -- BudgetGuard(...) --------------------------------------------------------------------
    Case("guard-state_ttl-int", _guard(state_ttl=5), "state_ttl"),
    Case("guard-state_ttl-zero", _guard(state_ttl=timedelta(0)), "state_ttl"),
    Case("guard-state_ttl-negative", _guard(state_ttl=timedelta(seconds=-1)), "state_ttl"),
    Case("guard-max_staleness-None", _guard(max_staleness=None), "max_staleness"),
    Case("guard-max_staleness-int", _guard(max_staleness=600), "max_staleness"),
    Case(
        "guard-max_staleness-below-ttl",
        _guard(max_staleness=timedelta(seconds=30)),
        "max_staleness",
    ),
    Case("guard-price-zero", _guard(ibm_price_per_second=Decimal(0)), "ibm_price_per_second"),
    Case("guard-price-int-zero", _guard(ibm_price_per_second=0), "ibm_price_per_second"),
    Case("guard-price-negative", _guard(ibm_price_per_second=Decimal(-1)), "ibm_price_per_second"),
    Case("guard-price-float", _guard(ibm_price_per_second=0.01), "ibm_price_per_second"),
    Case("guard-price-str", _guard(ibm_price_per_second="0.01"), "ibm_price_per_second"),
    Case("guard-price-nan", _guard(ibm_price_per_second=Decimal("NaN")), "ibm_price_per_second"),
    Case("guard-lease-int", _guard(lease=3600), "lease"),
    Case("guard-lease-zero", _guard(lease=timedelta(0)), "lease"),
    Case("guard-submit_timeout-str", _guard(submit_timeout="5"), "submit_timeout"),
    Case("guard-submit_timeout-zero", _guard(submit_timeout=0), "submit_timeout"),
    Case("guard-submit_timeout-nan", _guard(submit_timeout=math.nan), "submit_timeout"),
    Case("guard-fail_mode", _guard(fail_mode="sometimes"), "fail_mode"),
    Case("guard-clock-not-callable", _guard(clock=5), "clock"),
    Case("guard-clock-naive", _guard(clock=_naive), "clock()"),
    Case("guard-adapters-int", _guard(adapters=5), "adapters"),
    Case("guard-adapters-object", _guard(adapters=[object()]), "adapters[0]"),
    Case("guard-prices-str", _guard(prices="default"), "prices"),
    Case("guard-ibm-str", _guard(ibm="ibm"), "ibm"),
    Case("guard-braket-str", _guard(braket="braket"), "braket"),
    Case("guard-ibm_policy-str", lambda c: c.guard_with(ibm=c.ibm, ibm_policy="x"), "ibm_policy"),
    Case("guard-ledger-str", lambda c: BudgetGuard("memory", clock=c.clock), "ledger"),
    # -- settings assigned later -------------------------------------------------------------
    Case("set-lease-int", _set("lease", 5), "lease"),
    Case("set-submit_timeout-negative", _set("submit_timeout", -1), "submit_timeout"),
    Case("set-price-zero", _set("ibm_price_per_second", Decimal(0)), "ibm_price_per_second"),
    Case("set-clock-None", _set("clock", None), "clock"),
    Case("set-fail_mode", _set("fail_mode", "closed-ish"), "fail_mode"),
    # -- guard.watch(...) --------------------------------------------------------------------
    Case("watch-interval-str", _watch(interval="5"), "interval"),
    Case("watch-interval-negative", _watch(interval=-1), "interval"),
    Case("watch-interval-zero", _watch(interval=0), "interval"),
    Case("watch-interval-nan", _watch(interval=math.nan), "interval"),
    Case("watch-interval-inf", _watch(interval=math.inf), "interval"),
    Case("watch-interval-bool", _watch(interval=True), "interval"),
    Case("watch-max_interval-below", _watch(interval=5, max_interval=1), "max_interval"),
    Case("watch-max_interval-str", _watch(max_interval="60"), "max_interval"),
    Case("watch-max_interval-inf", _watch(max_interval=math.inf), "max_interval"),
    # -- guard.submit / check / settle / release ---------------------------------------------
    Case("submit-send-None", lambda c: c.guard.submit(Work(Decimal(1)), None), "submit"),
    Case("submit-work-unknown", _submit(object()), "work"),
    Case("submit-budgets-None", _submit(budgets=None), "budgets"),
    Case("submit-budgets-int", _submit(budgets=5), "budgets"),
    Case("submit-budgets-str", _submit(budgets="team:a"), "budgets"),
    Case("submit-budgets-bytes", _submit(budgets=b"team:a"), "budgets"),
    Case("submit-budgets-mapping", _submit(budgets={"team:a": 1}), "budgets"),
    Case("submit-budgets-element-int", _submit(budgets=[5]), "budgets[0]"),
    Case("submit-budgets-generator-int", _submit(budgets=_gen("team:a", 5)), "budgets[1]"),
    Case("submit-budgets-twice", _submit(budgets=["team:a", "team:a"]), "budgets[1]"),
    Case("submit-budgets-unknown", _submit(budgets=["team:nope"]), "budgets[0]"),
    Case("submit-budgets-None-keyed", _submit(budgets=None, idempotency_key="k"), "budgets"),
    Case("submit-key-int", _submit(idempotency_key=5), "idempotency_key"),
    Case("submit-key-empty", _submit(idempotency_key=""), "idempotency_key"),
    Case("check-budgets-None", _check(budgets=None), "budgets"),
    Case("check-budgets-int", _check(budgets=7), "budgets"),
    Case("check-budgets-str", _check(budgets="team:a"), "budgets"),
    Case("settle-int", lambda c: c.guard.settle(5), "submission"),
    Case("release-None", lambda c: c.guard.release(None), "submission"),
    # -- IBM work ----------------------------------------------------------------------------
    Case("ibmjob-backend-int", lambda c: IBMJob(5), "backend"),
    Case("ibmjob-backend-newline", lambda c: IBMJob("ibm_torino\n"), "backend"),
    Case("ibmjob-met-str", lambda c: IBMJob("b", max_execution_time="60"), "max_execution_time"),
    Case("ibmjob-met-zero", lambda c: IBMJob("b", max_execution_time=0), "max_execution_time"),
    Case("ibmjob-met-big", lambda c: IBMJob("b", max_execution_time=2**31), "max_execution_time"),
    Case("ibmjob-met-float", lambda c: IBMJob("b", max_execution_time=6.0), "max_execution_time"),
    Case("ibmjob-session-int", lambda c: IBMJob("b", session_id=7), "session_id"),
    Case("ibmjob-session-newline", lambda c: IBMJob("b", session_id="s-1\n"), "session_id"),
    Case("ibmjob-program-negative", lambda c: IBMJob("b", program_bytes=-1), "program_bytes"),
    Case("ibmjob-input-str", lambda c: IBMJob("b", input_bytes="10"), "input_bytes"),
    Case("ibmjob-simulator-str", lambda c: IBMJob("b", simulator="no"), "simulator"),
    Case("ibmjob-instance-int", lambda c: IBMJob("b", instance=5), "instance"),
    Case("ibmjob-instance-newline", lambda c: IBMJob("b", instance=CRN + "\n"), "instance"),
    Case("ibmsession-max_time-word", lambda c: IBMSession("b", max_time="forever"), "max_time"),
    Case("ibmsession-max_time-newline", lambda c: IBMSession("b", max_time="1h\n5"), "max_time"),
    Case("ibmsession-mode", lambda c: IBMSession("b", mode="shared"), "mode"),
    Case(
        "ibmsession-ttl-negative", lambda c: IBMSession("b", interactive_ttl=-5), "interactive_ttl"
    ),
    Case("ibmpolicy-cap-zero", lambda c: IBMPolicy(job_cap_seconds=0), "job_cap_seconds"),
    # -- IBM client --------------------------------------------------------------------------
    Case("ibm-crn-newline", _ibm_client(IBM_TEST_API_KEY, CRN + "\n"), "service_crn"),
    Case(
        "ibm-crn-tab", _ibm_client(IBM_TEST_API_KEY, CRN.replace("acct", "ac\tct")), "service_crn"
    ),
    Case("ibm-crn-int", _ibm_client(IBM_TEST_API_KEY, 5), "service_crn"),
    Case(
        "ibm-api_version-newline",
        _ibm_client(IBM_TEST_API_KEY, CRN, api_version="2026-03-15\n"),
        "api_version",
    ),
    Case("ibm-timeout-str", _ibm_client(IBM_TEST_API_KEY, CRN, timeout="5"), "timeout"),
    Case("ibm-timeout-zero", _ibm_client(IBM_TEST_API_KEY, CRN, timeout=0), "timeout"),
    Case("ibm-timeout-nan", _ibm_client(IBM_TEST_API_KEY, CRN, timeout=math.nan), "timeout"),
    Case("ibm-base_url-ftp", _ibm_client(IBM_TEST_API_KEY, CRN, base_url="ftp://x"), "base_url"),
    Case("ibm-api_key-empty", _ibm_client("", CRN), "api_key"),
    Case("ibm-get_job-newline", lambda c: c.ibm.get_job("job-1\n"), "job_id"),
    Case("ibm-get_job-int", lambda c: c.ibm.get_job(5), "job_id"),
    Case("ibm-get_session-newline", lambda c: c.ibm.get_session("s-1\n"), "session_id"),
    Case("ibm-get_account-newline", lambda c: c.ibm.get_account("acct\n"), "account_id"),
    Case(
        "ibm-instance_limit-zero",
        lambda c: c.ibm.update_instance_configuration(0),
        "instance_limit",
    ),
    Case("ibm-run_job-params", lambda c: c.ibm.run_job("sampler", "b", []), "params"),
    Case(
        "ibm-run_job-program-newline", lambda c: c.ibm.run_job("sampler\n", "b", {}), "program_id"
    ),
    # -- Braket work and prices --------------------------------------------------------------
    Case("task-arn-newline", lambda c: BraketTask(FORTE + "\n"), "device_arn"),
    Case("task-arn-int", lambda c: BraketTask(5), "device_arn"),
    Case("task-shots-str", lambda c: BraketTask(FORTE, shots="100"), "shots"),
    Case("task-shots-zero-qpu", lambda c: BraketTask(FORTE, shots=0), "shots"),
    Case("task-shots-bool", lambda c: BraketTask(FORTE, shots=True), "shots"),
    Case(
        "task-shots-huge-submit",
        lambda c: c.guard_with(prices=PriceTable.default()).submit(
            BraketTask(FORTE, shots=10**12), c.send, budgets=["team:a"]
        ),
        "shots",
    ),
    Case(
        "task-shots-huge-check",
        lambda c: c.guard_with(prices=PriceTable.default()).check(
            BraketTask(FORTE, shots=10**12), budgets=["team:a"]
        ),
        "shots",
    ),
    Case("task-price-str", lambda c: BraketTask(FORTE, price_override="cheap"), "price_override"),
    Case("task-duration-int", lambda c: BraketTask(FORTE, max_duration=5), "max_duration"),
    Case("price-min_seconds-str", lambda c: Price(min_seconds="3"), "min_seconds"),
    Case("price-min_seconds-negative", lambda c: Price(min_seconds=-1), "min_seconds"),
    Case("price-min_seconds-float", lambda c: Price(min_seconds=1.5), "min_seconds"),
    Case("price-min_seconds-bool", lambda c: Price(min_seconds=True), "min_seconds"),
    Case("price-per_shot-float", lambda c: Price(per_shot=0.08), "per_shot"),
    Case("price-per_task-word", lambda c: Price(per_task="abc"), "per_task"),
    Case("price-per_minute-negative", lambda c: Price(per_minute=Decimal(-1)), "per_minute"),
    Case(
        "prices-with_price-newline",
        lambda c: PriceTable.default().with_price(FORTE + "\n", "0.3"),
        "device_arn",
    ),
    # -- Braket client -----------------------------------------------------------------------
    Case(
        "braket-region-newline", lambda c: BraketClient("us-east-1\n", endpoint_url=DEAD), "region"
    ),
    Case("braket-region-int", lambda c: BraketClient(5, endpoint_url=DEAD), "region"),
    Case("braket-timeout-str", lambda c: BraketClient("us-east-1", timeout="5"), "timeout"),
    Case(
        "braket-endpoint-http",
        lambda c: BraketClient("us-east-1", endpoint_url="http://example.com"),
        "endpoint_url",
    ),
    Case("braket-get_task-newline", lambda c: c.braket.get_quantum_task(TASK_ARN + "\n"), "arn"),
    Case(
        "braket-update-limit-arn-newline",
        lambda c: c.braket.update_spending_limit(LIMIT_ARN + "\n", "10"),
        "arn",
    ),
    Case(
        "braket-create-limit-amount-newline",
        lambda c: c.braket.create_spending_limit(FORTE, "10\n"),
        "amount",
    ),
    Case(
        "braket-create-limit-amount-float",
        lambda c: c.braket.create_spending_limit(FORTE, 10.5),
        "amount",
    ),
    Case(
        "braket-create-task-arn-newline",
        lambda c: c.braket.create_quantum_task(FORTE + "\n", ACTION, 10, "bucket", "p"),
        "device_arn",
    ),
]


@pytest.fixture
async def ctx() -> AsyncIterator[Ctx]:
    clock = FakeClock()
    ledger = MemoryLedger()
    await ledger.put_budget(Budget("toy:device", Unit.USD, Decimal(10)))
    await ledger.put_budget(Budget("team:a", Unit.USD, Decimal(100)))
    async with (
        IBMRuntimeClient(IBM_TEST_API_KEY, CRN, base_url=f"{DEAD}/api", iam_url=DEAD) as ibm,
        BraketClient("us-east-1", endpoint_url=DEAD) as braket,
        BudgetGuard(ledger, adapters=[ToyAdapter()], clock=clock) as guard,
    ):
        yield Ctx(ledger, guard, ibm, braket, clock)


async def _snapshot(ledger: MemoryLedger, now: datetime) -> object:
    budgets = await ledger.budgets()
    states = [await ledger.state(b.key, now=now) for b in budgets]
    return budgets, states, await ledger.outstanding(), await ledger.lapsed()


async def _run(case: Case, ctx: Ctx) -> None:
    # Bounded: a watcher started with a bad interval would otherwise be awaited forever.
    async with asyncio.timeout(5):
        result = case.run(ctx)
        if inspect.isawaitable(result):
            await result


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_refused_naming_the_field(ctx: Ctx, case: Case) -> None:
    before = await _snapshot(ctx.ledger, ctx.clock())
    with pytest.raises(QuotaGuardError) as info:
        await _run(case, ctx)
    assert isinstance(info.value, case.error), repr(info.value)
    assert getattr(info.value, "field", None) == case.field, repr(info.value)
    assert ctx.sends == []
    assert await ctx.ledger.outstanding() == []
    assert await _snapshot(ctx.ledger, ctx.clock()) == before


def test_the_table_is_wide() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


# -- budgets= is read once ---------------------------------------------------------------------


async def test_budgets_generator_with_idempotency_key_charges_the_user_budget(ctx: Ctx) -> None:
    # Each submission charges 80.3 to team:a (limit 100): only the first may be sent.
    await ctx.ledger.put_budget(Budget("toy:device", Unit.USD, Decimal(1000)))
    sent, refused = 0, 0
    for n in range(3):
        try:
            await ctx.guard.submit(
                Work(Decimal("80.3")),
                ctx.send,
                budgets=(k for k in ["team:a"]),
                idempotency_key=f"gen-{n}",
            )
            sent += 1
        except QuotaGuardError:
            refused += 1
    assert (sent, refused) == (1, 2)
    state = await ctx.ledger.state("team:a", now=ctx.clock())
    assert state.reserved == Decimal("80.3")


async def test_budgets_generator_is_read_once_by_check(ctx: Ctx) -> None:
    decision = await ctx.guard.check(Work(Decimal("101")), budgets=(k for k in ["team:a"]))
    assert not decision.admitted
    assert {c.budget for c in decision.charges} == {"toy:device", "team:a"}


async def test_a_keyed_duplicate_with_a_generator_replays_the_first(ctx: Ctx) -> None:
    first = await ctx.guard.submit(
        Work(Decimal(2)), ctx.send, budgets=iter(["team:a"]), idempotency_key="same"
    )
    again = await ctx.guard.submit(
        Work(Decimal(2)), ctx.send, budgets=iter(["team:a"]), idempotency_key="same"
    )
    assert again.replayed and again.id == first.id
    assert ctx.sends == [1]
