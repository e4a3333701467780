"""What observability costs on the admission path: guard.submit on the memory ledger (a send
that returns its task at once, so every submission is estimated, reserved, sent and bound),
side by side in one run, the variants interleaved round by round:

- baseline: no OTel provider, the quotaguard loggers off;
- events on: ``quotaguard.events`` at INFO with a handler (what a service logs); and, as a
  figure without a goal, with a subscriber (every event built, DEBUG ones too);
- OTel recording: the SDK's MeterProvider (an in-memory reader); and, without a goal, with
  the SDK's TracerProvider too (a span per submission and four per step, exported in memory).
"""

from __future__ import annotations

import asyncio
import io
import logging
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


def _otel(traces: bool) -> Telemetry:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return Telemetry(meter_provider=meters, tracer_provider=tracers, traces=traces)


async def _rate(n: int, telemetry: Telemetry | bool, subscribe: bool = False) -> float:
    """Submissions per second through one guard."""
    async with BudgetGuard(MemoryLedger(), prices=PriceTable.default(), telemetry=telemetry) as g:
        await g.add_budget(Budget("team:bench", Unit.USD, Decimal(10) ** 9))
        if subscribe:
            g.on_event(lambda event: None)
        task = BraketTask(DEVICE, shots=10)

        async def send() -> dict[str, str]:
            return TASK_ARN

        for _ in range(50):  # warm up: caches, the price table's warning, the SDK's storage
            await g.submit(task, send, budgets=("team:bench",))
        start = time.perf_counter()
        for _ in range(n):
            await g.submit(task, send, budgets=("team:bench",))
        return n / (time.perf_counter() - start)


def run(n: int = 2_000, rounds: int = 5) -> dict[str, Any]:
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
        events_log.setLevel(logging.INFO)
        events_log.addHandler(handler)

    variants: dict[str, tuple[Callable[[], None], Callable[[], Telemetry | bool], bool]] = {
        "baseline": (logging_off, lambda: False, False),
        "events_info_log": (events_info, lambda: False, False),
        "events_subscriber": (logging_off, lambda: False, True),
        "otel_metrics": (logging_off, lambda: _otel(traces=False), False),
        "otel_metrics_traces": (logging_off, lambda: _otel(traces=True), False),
    }
    best: dict[str, float] = dict.fromkeys(variants, 0.0)
    try:
        for _ in range(rounds):  # interleaved: drift on a busy machine hits every variant alike
            for name, (setup, telemetry, subscribe) in variants.items():
                logging_off()
                setup()
                best[name] = max(best[name], asyncio.run(_rate(n, telemetry(), subscribe)))
    finally:
        logging_off()
        quiet.setLevel(before[0])
        events_log.setLevel(before[1])
    base = best["baseline"]
    out: dict[str, Any] = {f"{k}_admissions_per_s": round(v) for k, v in best.items()}
    out.update({f"{k}_vs_baseline": round(v / base, 3) for k, v in best.items() if v != base})
    out["goal_events_info_log_min"] = 0.95
    out["goal_otel_metrics_min"] = 0.9
    return out


if __name__ == "__main__":
    print(run())
