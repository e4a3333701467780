"""OpenTelemetry: a scripted run against the emulator, read back through the SDK's in-memory
metric reader and span exporter (per-test providers, passed explicitly); and nothing at all
when the API is not installed."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from quotaguard import Budget, BudgetExceeded, BudgetUnavailable, InvalidInput, MemoryLedger, Unit
from quotaguard.braket.client import BraketClient
from quotaguard.braket.work import BraketTask
from quotaguard.guard import BudgetGuard
from quotaguard.guard.telemetry import Telemetry
from quotaguard.ibm.client import IBMRuntimeClient
from quotaguard.ibm.work import IBMJob
from quotaguard.testing import Emulator, FakeClock
from quotaguard.testing.seed import DemoSeed, seed_demo
from tests._support.braket import ACTION
from tests._support.extras import python, without
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget
from tests._support.secrets import GUARD_AWS_SECRET_KEY

TEAM = "team:q"


class Otel:
    """One test's meter and tracer providers, read back in memory."""

    def __init__(self, latency_interval: float = 0) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.telemetry = Telemetry(
            meter_provider=self.meters,
            tracer_provider=self.tracers,
            latency_interval=latency_interval,  # every decision timed (the default samples)
        )

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) of every data point of metric ``name``."""
        data = self.reader.get_metrics_data()
        if data is None:  # nothing recorded at all
            return []
        return [
            (dict(p.attributes or {}), p)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
        ]

    def values(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        return {frozenset(a.items()): getattr(p, "value", None) for a, p in self.points(name)}

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    yield o
    o.meters.shutdown()
    o.tracers.shutdown()


def key(**attributes: str) -> frozenset[tuple[str, str]]:
    return frozenset((f"quotaguard.{k}", v) for k, v in attributes.items())


async def test_a_scripted_run_records_decisions_amounts_gauges_and_spans(
    braket: tuple[BraketClient, DemoSeed], emulator: Emulator, clock: FakeClock, otel: Otel
) -> None:
    client, seed = braket
    device = f"braket:{seed.device_arn}"
    async with BudgetGuard(
        MemoryLedger(), braket=client, clock=clock, fail_mode="open", telemetry=otel.telemetry
    ) as guard:
        # 7 tasks of $1.10 ($0.30 + 10 shots x $0.08) fit the team's $7.70; 3 more do not.
        # The 4th takes the team past its 50 % alert level, the 7th past 100 %.
        await guard.add_budget(Budget(TEAM, Unit.USD, Decimal("7.70"), alert_levels=(50, 100)))
        subs = []
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

            with contextlib.suppress(BudgetExceeded):  # 3 refused: counted, asserted below
                subs.append(await guard.submit(task, send, budgets=[TEAM]))
        await guard.settle(subs[0], actual=Decimal("0.5"))
        clock.advance(seconds=30)
        await guard.status()  # the budget gauges read this snapshot
    assert len(subs) == 7

    decisions = otel.values("quotaguard.decisions")
    admitted = {"provider": "braket", "decision": "admitted"}
    assert decisions == {
        key(**admitted, budget=TEAM): 7,
        key(**admitted, budget=device): 7,
        key(provider="braket", decision="rejected", rule="budget.remaining", budget=TEAM): 3,
    }
    assert otel.values("quotaguard.fail_open") == {key(provider="braket", budget=device): 1}
    assert otel.values("quotaguard.in_doubt") == {}  # every send returned its task
    assert otel.values("quotaguard.alerts") == {
        key(provider="braket", budget=TEAM, level="50"): 1,
        key(provider="braket", budget=TEAM, level="100"): 1,
    }
    # Reserved against settled, per budget, recorded as each hold settles.
    reserved = {frozenset(a.items()): p for a, p in otel.points("quotaguard.reserved")}
    settled = {frozenset(a.items()): p for a, p in otel.points("quotaguard.settled")}
    for budget in (TEAM, device):
        held, spent = (
            reserved[key(budget=budget, unit="USD")],
            settled[key(budget=budget, unit="USD")],
        )
        assert (held.count, held.sum) == (1, pytest.approx(1.10))
        assert (spent.count, spent.sum) == (1, pytest.approx(0.5))
    latency = {frozenset(a.items()): p for a, p in otel.points("quotaguard.admission.duration")}
    assert latency[key(**admitted)].count == 7
    assert latency[key(provider="braket", decision="rejected")].count == 3
    assert 0 < latency[key(**admitted)].min <= latency[key(**admitted)].max < 30
    # Gauges: $7.70 - 0.5 settled - 6 x 1.10 still held = $0.60 left; 6 holds open.
    assert otel.values("quotaguard.budget.remaining")[key(budget=TEAM, unit="USD")] == (
        pytest.approx(0.60)
    )
    assert otel.values("quotaguard.budget.outstanding")[key(budget=TEAM, unit="USD")] == 6
    assert otel.values("quotaguard.budget.reserved")[key(budget=TEAM, unit="USD")] == (
        pytest.approx(6.60)
    )
    # The limits were refetched after the outage (submission 8), 30 s before the collection.
    assert otel.values("quotaguard.provider.state_age") == {key(source=device): 30.0}

    spans = otel.spans()
    submits = [s for s in spans if s.name == "quotaguard.submit"]
    assert len(submits) == 10
    by_id = {s.context.span_id: s for s in spans}

    def children(parent: ReadableSpan) -> list[str]:
        return [s.name for s in spans if s.parent and s.parent.span_id == parent.context.span_id]

    first = submits[0]
    assert children(first) == [
        "quotaguard.estimate",
        "quotaguard.reserve",
        "quotaguard.send",
        "quotaguard.bind",
    ]
    assert first.attributes is not None
    assert first.attributes["quotaguard.provider"] == "braket"
    assert first.attributes["quotaguard.reservation_id"] == subs[0].id
    # The first estimate fetched the spending limits: its HTTP span is the estimate's child;
    # the send's CreateQuantumTask is the send step's.
    estimate = next(s for s in spans if s.name == "quotaguard.estimate" and s.parent
                    and s.parent.span_id == first.context.span_id)  # fmt: skip
    assert children(estimate) == ["POST"]
    send_step = next(s for s in spans if s.name == "quotaguard.send" and s.parent
                     and s.parent.span_id == first.context.span_id)  # fmt: skip
    (http,) = [s for s in spans if s.parent and s.parent.span_id == send_step.context.span_id]
    assert http.attributes is not None
    assert http.attributes["http.response.status_code"] in (200, 201)
    assert http.attributes["quotaguard.provider"] == "braket"
    assert str(http.attributes["url.full"]).startswith(emulator.url)
    rejected = [s for s in submits if s.attributes and "quotaguard.rules" in s.attributes]
    assert [tuple(s.attributes["quotaguard.rules"]) for s in rejected] == [  # type: ignore[index, arg-type]
        ("budget.remaining",)
    ] * 3
    assert all(s.status.status_code.name == "ERROR" for s in rejected)
    assert all(s.parent is None or s.parent.span_id not in by_id for s in submits)
    every = json.dumps([dict(s.attributes or {}) for s in spans])
    assert "AKIDTEST" not in every and GUARD_AWS_SECRET_KEY not in every


async def test_an_ibm_error_puts_its_trace_id_on_the_http_span(
    emulator: Emulator, clock: FakeClock, otel: Otel
) -> None:
    seed = seed_demo(emulator)
    body = {"errors": [{"code": "forbidden", "message": "no"}], "trace": "trace-otel-1"}
    emulator.faults.add("ibm.get_usage", status=403, body=json.dumps(body), times=10)
    async with (
        IBMRuntimeClient(
            seed.api_key,
            seed.service_crn,
            base_url=f"{emulator.url}/api",
            iam_url=emulator.url,
            clock=clock,
            timeout=2,
        ) as ibm,  # fmt: skip
        BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock, telemetry=otel.telemetry) as guard,
    ):
        with pytest.raises(BudgetUnavailable):
            await guard.submit(IBMJob(seed.backend, max_execution_time=60), lambda: None)
    spans = otel.spans()
    (submit,) = [s for s in spans if s.name == "quotaguard.submit"]
    http = [s for s in spans if s.attributes and s.attributes.get("quotaguard.provider") == "ibm"]
    failed = [s for s in http if s.attributes and s.attributes["http.response.status_code"] == 403]
    assert failed
    assert {s.attributes["quotaguard.provider.trace_id"] for s in failed} == {"trace-otel-1"}  # type: ignore[index]
    assert all(s.status.status_code.name == "ERROR" for s in failed)
    ok = [s for s in http if s not in failed]
    assert all("quotaguard.provider.trace_id" not in (s.attributes or {}) for s in ok)
    assert all(s.context.trace_id == submit.context.trace_id for s in http)
    assert seed.api_key not in json.dumps([dict(s.attributes or {}) for s in spans])
    # Unavailable state refused it (fail closed): not a rule's decision, as in the events.
    assert otel.values("quotaguard.decisions") == {}


def test_the_telemetry_argument_is_checked() -> None:
    with pytest.raises(InvalidInput, match="telemetry"):
        BudgetGuard(MemoryLedger(), telemetry="yes")  # type: ignore[arg-type]
    for bad in (-1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(InvalidInput, match="latency_interval"):
            Telemetry(latency_interval=bad)  # type: ignore[arg-type]


async def test_the_latency_histogram_samples_while_the_counters_count_all() -> None:
    otel = Otel(latency_interval=3600)  # at most one timed decision an hour
    try:
        toy = ToyAdapter()
        async with BudgetGuard(MemoryLedger(), adapters=[toy], telemetry=otel.telemetry) as g:
            await add_toy_budget(g, "10")
            for n in range(4):
                await g.submit(Work(Decimal(1)), lambda n=n: Job(f"toy-{n}"))
        latency = otel.points("quotaguard.admission.duration")
        assert [p.count for _, p in latency] == [1]
        admitted = key(provider="toy", decision="admitted", budget="toy:device")
        assert otel.values("quotaguard.decisions") == {admitted: 4}
    finally:
        otel.meters.shutdown()
        otel.tracers.shutdown()


def test_without_a_global_provider_the_default_records_nothing() -> None:
    guard = BudgetGuard(MemoryLedger())
    assert guard._events.telemetry is None and guard._tracer is None


NO_OTEL = """
import asyncio, sys
from decimal import Decimal
from quotaguard import Budget, BudgetGuard, MemoryLedger, Unit, MissingDependency
from quotaguard.braket.pricing import PriceTable
from quotaguard.braket.work import BraketTask

async def main():
    for telemetry in (None, True):
        try:
            BudgetGuard(MemoryLedger(), prices=PriceTable.default(), telemetry=telemetry)
        except MissingDependency as exc:
            print("telemetry", telemetry, exc.extra)
    async with BudgetGuard(MemoryLedger(), prices=PriceTable.default()) as guard:
        await guard.add_budget(Budget("team:q", Unit.USD, Decimal(100)))
        task = BraketTask("arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1", shots=10)
        async def send():
            return {"quantumTaskArn": "arn:aws:braket:us-east-1:1:quantum-task/x"}
        sub = await guard.submit(task, send, budgets=["team:q"])
        print("submitted", bool(sub.id), guard._events.telemetry, guard._tracer)
    print("loaded", sorted(m for m in sys.modules if m.startswith("opentelemetry")))

asyncio.run(main())
"""


async def test_without_the_api_nothing_breaks_and_nothing_is_recorded(tmp_path: Path) -> None:
    code, out = await python(NO_OTEL, without("opentelemetry", tmp_path))
    assert code == 0, out
    lines = out.splitlines()
    assert "telemetry True otel" in lines  # asking for it names the extra to install
    assert "submitted True None None" in lines
    assert lines[-1] == "loaded []"
    assert not any(line.startswith("telemetry None") for line in lines)  # the default: quiet


async def test_a_watcher_pass_reads_the_budget_gauges_at_most_every_15_s(
    clock: FakeClock, otel: Otel
) -> None:
    def remaining() -> object:
        return otel.values("quotaguard.budget.remaining").get(key(budget=TEAM, unit="USD"))

    async with BudgetGuard(MemoryLedger(), clock=clock, telemetry=otel.telemetry) as guard:
        await guard.add_budget(Budget(TEAM, Unit.USD, Decimal(5)))
        assert remaining() is None  # nothing read yet
        await guard.watch_once()
        assert remaining() == 5.0
        await guard.add_budget(Budget(TEAM, Unit.USD, Decimal(8)))
        clock.advance(seconds=14)
        await guard.watch_once()
        assert remaining() == 5.0  # the snapshot is 14 s old: not read again
        clock.advance(seconds=1)
        await guard.watch_once()
        assert remaining() == 8.0


GLOBAL = """
import asyncio
from decimal import Decimal
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from quotaguard import Budget, BudgetGuard, MemoryLedger, Unit

before = BudgetGuard(MemoryLedger())  # made before the application set a provider
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
after = BudgetGuard(MemoryLedger())
print("before", before._events.telemetry is not None, "after", after._events.telemetry is not None)
print("tracing", after._tracer is not None)  # no tracer provider was set
"""


async def test_the_default_records_to_a_global_provider_set_before_the_guard(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    code, out = await python(GLOBAL, env)
    assert code == 0, out
    assert out.splitlines()[-2:] == ["before False after True", "tracing False"]
