"""The guard's OpenTelemetry metrics and spans (the optional ``otel`` extra).

:class:`Telemetry` names the meter and tracer providers a guard records to. Its
:class:`Recorder` is the metrics half, fed by the guard's :class:`~quotaguard.guard.events.Events`
hub at the same call sites as the events (one place where things happen); the tracer makes the
``quotaguard.submit`` span and its steps (``guard/admission.py``) and, through
:func:`quotaguard._otel.using`, the HTTP spans of the provider calls. Metric and attribute names
are stable (docs/observability.md). Attributes carry budget keys, providers, rule codes and
units, never credentials; amounts are recorded as floats (the ledger keeps the exact Decimals).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from quotaguard import _otel
from quotaguard._extras import missing
from quotaguard._version import __version__
from quotaguard.engine.model import BudgetState, Decision, Reservation
from quotaguard.errors import InvalidInput

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["NO_SPANS", "Recorder", "Spans", "Telemetry", "resolve"]

#: Admission latency buckets, in seconds (the SDK's default ones are for milliseconds).
LATENCY_BUCKETS = (0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5,
                   0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # fmt: skip

Attributes = dict[str, str]
Counts = dict[tuple[str | None, ...], int]


def _count(counts: Counts, key: tuple[str | None, ...]) -> None:
    counts[key] = counts.get(key, 0) + 1


def _totals(
    counts: Counts, fields: tuple[str, ...]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """An observable counter's callback: each running total, with its attributes."""

    def observe(options: CallbackOptions) -> list[Observation]:
        from opentelemetry.metrics import Observation

        return [
            Observation(n, {f"quotaguard.{f}": v for f, v in zip(fields, key, strict=True) if v})
            for key, n in list(counts.items())
        ]

    return observe


class Recorder:
    """The guard's instruments, and what its gauges report when the SDK collects."""

    def __init__(
        self, provider: MeterProvider, clock: Callable[[], datetime], latency_interval: float
    ) -> None:
        meter = provider.get_meter(_otel.SCOPE, __version__)
        self.clock = clock
        # One SDK call (opentelemetry-sdk 1.45) costs about half an admission on the memory
        # ledger (bench/telemetry.py: a median 90 us against 160 us, loaded 2-core machine):
        # the latency histogram takes a sample, at most one decision per ``latency_interval``
        # seconds (0: every one), and the counters are counted here, read when the SDK
        # collects (observable counters of the running totals): a dict increment each.
        self.latency_interval = latency_interval
        self._latency_at = -math.inf
        self._attributes: dict[tuple[tuple[str, str], ...], Attributes] = {}
        # Running totals by attribute values, in the order of each counter's fields (None:
        # that attribute is absent).
        self._decided: Counts = {}
        self._failed_open: Counts = {}
        self._doubted: Counts = {}
        for name, unit, description, counts, fields in (
            ("quotaguard.decisions", "{decision}",
             "Admission decisions: one per budget charged (rejections: one per rule)",
             self._decided, ("provider", "decision", "budget", "rule")),
            ("quotaguard.fail_open", "{admission}",
             "Admissions without fresh provider state (fail_mode=open)",
             self._failed_open, ("provider", "budget")),
            ("quotaguard.in_doubt", "{reservation}", "Holds marked in doubt", self._doubted, ()),
        ):  # fmt: skip
            meter.create_observable_counter(
                name, callbacks=[_totals(counts, fields)], unit=unit, description=description
            )
        self._reserved = meter.create_histogram(
            "quotaguard.reserved", description="Amount settled work had held, per charge"
        )
        self._settled = meter.create_histogram(
            "quotaguard.settled", description="Amount committed per settled charge"
        )
        self._latency = meter.create_histogram(
            "quotaguard.admission.duration",
            unit="s",
            description="Time to decide a submission: estimate and reserve, not the send",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self._states: dict[str, BudgetState] = {}
        self._states_at: datetime | None = None
        self._fetched: dict[str, datetime] = {}
        gauges: list[tuple[str, str, str, Callable[[CallbackOptions], Iterable[Observation]]]] = [
            ("quotaguard.budget.remaining", "", "Budget left, in its unit", self._remaining),
            ("quotaguard.budget.reserved", "", "Amount held by outstanding work", self._held),
            ("quotaguard.budget.outstanding", "{reservation}", "Holds open", self._outstanding),
            ("quotaguard.provider.state_age", "s", "Age of cached provider state", self._ages),
        ]
        for name, unit, description, callback in gauges:
            meter.create_observable_gauge(
                name, callbacks=[callback], unit=unit, description=description
            )

    def _attrs(self, **values: str) -> Attributes:
        """``quotaguard.<name>`` attributes, one dict per set: the same few recur on every call."""
        key = tuple(values.items())
        found = self._attributes.get(key)
        if found is None:
            if len(self._attributes) >= 4096:
                self._attributes.clear()  # bounded; the sets in use come back
            found = self._attributes[key] = {f"quotaguard.{k}": v for k, v in key}
        return found

    def _time(self, started: float, provider: str, decision: str) -> None:
        now = time.perf_counter()
        if now - self._latency_at >= self.latency_interval:
            self._latency_at = now
            self._latency.record(now - started, self._attrs(provider=provider, decision=decision))

    # -- fed by the events hub, at the events' call sites ------------------------------------

    def admitted(
        self, decision: Decision, provider: str, fail_open: Sequence[str], started: float
    ) -> None:
        self._time(started, provider, "admitted")
        for budget in fail_open:
            _count(self._failed_open, (provider, budget))
        if not decision.charges:
            _count(self._decided, (provider, "admitted", None, None))
        for c in decision.charges:
            _count(self._decided, (provider, "admitted", c.budget, None))

    def rejected(self, decision: Decision, provider: str, started: float) -> None:
        self._time(started, provider, "rejected")
        for v in decision.violations:
            _count(self._decided, (provider, "rejected", v.budget or None, v.rule))

    def settled(self, before: Reservation, after: Reservation) -> None:
        for c in before.charges:
            self._reserved.record(float(c.amount), self._attrs(budget=c.budget, unit=c.unit.value))
        for c in after.actual or ():
            self._settled.record(float(c.amount), self._attrs(budget=c.budget, unit=c.unit.value))

    def marked_in_doubt(self) -> None:
        _count(self._doubted, ())

    def refreshed(self, source: str, now: datetime) -> None:
        self._fetched[source] = now

    def states(self, states: Iterable[BudgetState], now: datetime) -> None:
        self._states = {s.budget.key: s for s in states}
        self._states_at = now

    def states_due(self, now: datetime, every: float = 15.0) -> bool:
        """Whether the budget gauges' snapshot is older than ``every`` seconds."""
        at = self._states_at
        return at is None or (now - at).total_seconds() >= every

    # -- the gauges: read when the SDK collects (any thread), from the last snapshot ---------

    def _observe(self, value: Callable[[BudgetState], float]) -> list[Observation]:
        from opentelemetry.metrics import Observation

        return [
            Observation(value(s), self._attrs(budget=key, unit=s.budget.unit.value))
            for key, s in list(self._states.items())
        ]

    def _remaining(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: float(s.remaining))

    def _held(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: float(s.reserved))

    def _outstanding(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: s.outstanding)

    def _ages(self, options: CallbackOptions) -> list[Observation]:
        from opentelemetry.metrics import Observation

        now = self.clock()
        return [
            Observation((now - at).total_seconds(), self._attrs(source=source))
            for source, at in list(self._fetched.items())
        ]


class Telemetry:
    """Where a guard's metrics and spans go: ``BudgetGuard(..., telemetry=Telemetry(...))``.

    Each provider defaults to the global one (``opentelemetry.metrics`` / ``.trace``);
    ``metrics=False`` or ``traces=False`` turns that half off. The latency histogram records
    at most one decision per ``latency_interval`` seconds (a sample; ``0``: every decision;
    the decision counters always count all). Needs ``opentelemetry-api``
    (the ``otel`` extra): :class:`~quotaguard.errors.MissingDependency` otherwise.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        metrics: bool = True,
        traces: bool = True,
        latency_interval: float = 0.05,
    ) -> None:
        try:
            from opentelemetry import metrics as api_metrics
            from opentelemetry import trace as api_trace
        except ImportError:
            raise missing("otel", "Telemetry") from None
        self.meter_provider = meter_provider or api_metrics.get_meter_provider()
        self.tracer_provider = tracer_provider or api_trace.get_tracer_provider()
        self.metrics = bool(metrics)
        self.traces = bool(traces)
        if (
            isinstance(latency_interval, bool)
            or not isinstance(latency_interval, int | float)
            or not 0 <= latency_interval < math.inf
        ):
            raise InvalidInput("latency_interval", "must be a finite number of seconds >= 0")
        self.latency_interval = float(latency_interval)

    def __repr__(self) -> str:
        return f"Telemetry(metrics={self.metrics}, traces={self.traces})"

    @classmethod
    def from_globals(cls) -> Telemetry | None:
        """The global providers the application has set (``None``: it set neither)."""
        meters = _otel.global_provider("metrics") is not None
        traces = _otel.global_provider("trace") is not None
        return cls(metrics=meters, traces=traces) if meters or traces else None

    def recorder(self, clock: Callable[[], datetime]) -> Recorder | None:
        if not self.metrics:
            return None
        return Recorder(self.meter_provider, clock, self.latency_interval)

    def tracer(self) -> Tracer | None:
        return self.tracer_provider.get_tracer(_otel.SCOPE, __version__) if self.traces else None


def resolve(telemetry: object) -> Telemetry | None:
    """``BudgetGuard(telemetry=...)``: ``None`` (the default) records to the global providers
    the application set before the guard was made, if any; ``True`` to the global providers
    even if set later; ``False`` records nothing; a :class:`Telemetry` as it says."""
    if telemetry is None:
        return Telemetry.from_globals()
    if telemetry is True:
        return Telemetry()
    if telemetry is False:
        return None
    if isinstance(telemetry, Telemetry):
        return telemetry
    raise InvalidInput("telemetry", "must be None, True, False or a Telemetry")


class Spans:
    """The steps of one ``quotaguard.submit`` span; :data:`NO_SPANS` when not tracing (one
    shared object whose steps are a no-op context manager)."""

    def __init__(self, tracer: Tracer | None = None, span: Span | None = None) -> None:
        self.tracer = tracer
        self.span = span

    def step(self, name: str) -> AbstractContextManager[object]:
        """A child span ``quotaguard.<name>`` (estimate, reserve, send, bind)."""
        if self.tracer is None:
            return _NOTHING
        return self.tracer.start_as_current_span(f"quotaguard.{name}")

    def set(self, key: str, value: str | Sequence[str]) -> None:
        if self.span is not None:
            self.span.set_attribute(f"quotaguard.{key}", value)


_NOTHING = contextlib.nullcontext()
NO_SPANS = Spans()
