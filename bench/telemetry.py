"""What observability costs on the admission path: guard.submit on the memory ledger (a send
that returns its task at once, so every submission is estimated, reserved, sent and bound),
side by side in one run, the variants taking turns submission by submission:

- baseline: no OTel provider, the quotaguard loggers off (twice: the second one's ratio is the
  run's noise);
- events on: ``quotaguard.events`` at INFO with a handler (what a service logs); and, as a
  figure without a goal, with a subscriber (every event built, DEBUG ones too);
- OTel recording: the SDK's MeterProvider (an in-memory reader), the default settings; and,
  without a goal, every decision's latency recorded (``latency_interval=0``), and the SDK's
  TracerProvider too (a span per submission and one per step, exported in memory).
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from quotaguard import Budget, BudgetGuard, MemoryLedger, Unit
from quotaguard.braket.pricing import PriceTable
from quotaguard.braket.work import BraketTask
from quotaguard.guard.telemetry import Telemetry

DEVICE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
TASK_ARN = {"quantumTaskArn": "arn:aws:braket:us-east-1:1:quantum-task/bench"}


def _otel(traces: bool, latency_interval: float = 0.05) -> Telemetry:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return Telemetry(
        meter_provider=meters,
        tracer_provider=tracers,
        traces=traces,
        latency_interval=latency_interval,
    )


async def _measure(
    n: int, variants: dict[str, tuple[Callable[[], None], Telemetry | bool | None, bool]]
) -> dict[str, float]:
    """Submissions per second per variant: one guard each, on one loop, the variants taking
    turns submission by submission (shuffled), so load on a busy machine hits all alike. Each
    variant's rate is from the fastest 90 % of its calls: a preemption spike is noise."""
    task = BraketTask(DEVICE, shots=10)

    async def send() -> dict[str, str]:
        return TASK_ARN

    guards: dict[str, BudgetGuard] = {}
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for name, (_, telemetry, subscribe) in variants.items():
            guard = guards[name] = BudgetGuard(
                MemoryLedger(), prices=PriceTable.default(), telemetry=telemetry
            )
            await guard.add_budget(Budget("team:bench", Unit.USD, Decimal(10) ** 9))
            if subscribe:
                guard.on_event(lambda event: None)
            for _ in range(50):  # warm up: caches, the price table's warning, the SDK
                await guard.submit(task, send, budgets=("team:bench",))
        names, rng = list(variants), random.Random(15)
        for i in range(n):
            if i % 500 == 0:
                gc.collect()  # between blocks, not inside a timed call
            # A new order each turn: a variant that allocates much (spans) triggers collections
            # in whichever call comes next; a fixed order would bill its neighbour.
            rng.shuffle(names)
            for name in names:
                variants[name][0]()  # its logging set-up (clears logging's cache: every one)
                guard = guards[name]
                start = time.perf_counter()
                await guard.submit(task, send, budgets=("team:bench",))
                times[name].append(time.perf_counter() - start)
    finally:
        for guard in guards.values():
            await guard.aclose()
    fastest = {name: sorted(t)[: int(len(t) * 0.9)] for name, t in times.items()}
    return {name: len(t) / sum(t) for name, t in fastest.items()}


def run(n: int = 4_000) -> dict[str, Any]:
    quiet = logging.getLogger("quotaguard")
    events_log = logging.getLogger("quotaguard.events")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    before = (quiet.level, events_log.level)

    def logging_off() -> None:
        quiet.setLevel(logging.CRITICAL + 1)
        events_log.setLevel(logging.NOTSET)
        events_log.removeHandler(handler)

    def events_info() -> None:
        quiet.setLevel(logging.CRITICAL + 1)
        events_log.setLevel(logging.INFO)
        if handler not in events_log.handlers:
            events_log.addHandler(handler)

    variants: dict[str, tuple[Callable[[], None], Telemetry | bool | None, bool]] = {
        # The default telemetry=None: no global provider is set here, so none is used.
        "baseline": (logging_off, None, False),
        # The same as the baseline: how far apart two equal variants land is this run's noise.
        "baseline_again": (logging_off, None, False),
        "events_info_log": (events_info, False, False),
        "events_subscriber": (logging_off, False, True),
        "otel_metrics": (logging_off, _otel(traces=False), False),
        # Every decision timed (latency_interval=0): no goal; what the default's sample saves.
        "otel_metrics_every_latency": (logging_off, _otel(False, latency_interval=0), False),
        "otel_metrics_traces": (logging_off, _otel(traces=True), False),
    }
    try:
        rates = asyncio.run(_measure(n, variants))
    finally:
        logging_off()
        quiet.setLevel(before[0])
        events_log.setLevel(before[1])
    base = rates["baseline"]
    out: dict[str, Any] = {f"{k}_admissions_per_s": round(v) for k, v in rates.items()}
    out.update({f"{k}_vs_baseline": round(v / base, 3) for k, v in rates.items() if v != base})
    out["goal_events_info_log_min"] = 0.95
    out["goal_otel_metrics_min"] = 0.9
    return out


if __name__ == "__main__":
    print(run())
