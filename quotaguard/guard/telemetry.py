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


class Recorder:
    """The guard's instruments, and what its gauges report when the SDK collects."""

    def __init__(self, provider: MeterProvider, clock: Callable[[], datetime]) -> None:
        meter = provider.get_meter(_otel.SCOPE, __version__)
        self.clock = clock
        self._attributes: dict[tuple[tuple[str, str], ...], Attributes] = {}
        # The counters are counted here and reported when the SDK collects (observable
        # counters of the running totals): a dict increment on the admission path instead of
        # an SDK call per decision, which costs a tenth of an admission.
        self._counts: dict[str, dict[tuple[tuple[str, str], ...], int]] = {}
        for name, unit, description in (
            ("quotaguard.decisions", "{decision}",
             "Admission decisions: one per budget charged (rejections: one per rule)"),
            ("quotaguard.fail_open", "{admission}",
             "Admissions without fresh provider state (fail_mode=open)"),
            ("quotaguard.in_doubt", "{reservation}", "Holds marked in doubt"),
        ):  # fmt: skip
            counts = self._counts[name] = {}
            meter.create_observable_counter(
                name, callbacks=[self._totals(counts)], unit=unit, description=description
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
        return self._attributes_of(tuple(values.items()))

    def _attributes_of(self, key: tuple[tuple[str, str], ...]) -> Attributes:
        found = self._attributes.get(key)
        if found is None:
            if len(self._attributes) >= 4096:
                self._attributes.clear()  # bounded; the sets in use come back
            found = self._attributes[key] = {f"quotaguard.{k}": v for k, v in key}
        return found

    def _count(self, name: str, *key: tuple[str, str]) -> None:
        counts = self._counts[name]
        counts[key] = counts.get(key, 0) + 1

    def _totals(
        self, counts: dict[tuple[tuple[str, str], ...], int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> list[Observation]:
            from opentelemetry.metrics import Observation

            return [Observation(n, self._attributes_of(k)) for k, n in list(counts.items())]

        return observe

    # -- fed by the events hub, at the events' call sites ------------------------------------

    def admitted(
        self, decision: Decision, provider: str, fail_open: Sequence[str], started: float
    ) -> None:
        elapsed = time.perf_counter() - started
        self._latency.record(elapsed, self._attrs(provider=provider, decision="admitted"))
        by = ("provider", provider)
        for budget in fail_open:
            self._count("quotaguard.fail_open", by, ("budget", budget))
        if not decision.charges:
            self._count("quotaguard.decisions", by, ("decision", "admitted"))
        for c in decision.charges:
            self._count("quotaguard.decisions", by, ("decision", "admitted"), ("budget", c.budget))

    def rejected(self, decision: Decision, provider: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        self._latency.record(elapsed, self._attrs(provider=provider, decision="rejected"))
        by = ("provider", provider)
        for v in decision.violations:
            where = (("budget", v.budget),) if v.budget else ()
            self._count("quotaguard.decisions", by, ("decision", "rejected"), ("rule", v.rule),
                        *where)  # fmt: skip

    def settled(self, before: Reservation, after: Reservation) -> None:
        for c in before.charges:
            self._reserved.record(float(c.amount), self._attrs(budget=c.budget, unit=c.unit.value))
        for c in after.actual or ():
            self._settled.record(float(c.amount), self._attrs(budget=c.budget, unit=c.unit.value))

    def marked_in_doubt(self) -> None:
        self._count("quotaguard.in_doubt")

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
    ``metrics=False`` or ``traces=False`` turns that half off. Needs ``opentelemetry-api``
    (the ``otel`` extra): :class:`~quotaguard.errors.MissingDependency` otherwise.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        metrics: bool = True,
        traces: bool = True,
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

    def __repr__(self) -> str:
        return f"Telemetry(metrics={self.metrics}, traces={self.traces})"

    @classmethod
    def from_globals(cls) -> Telemetry | None:
        """The global providers the application has set (``None``: it set neither)."""
        meters = _otel.global_provider("metrics") is not None
        traces = _otel.global_provider("trace") is not None
        return cls(metrics=meters, traces=traces) if meters or traces else None

    def recorder(self, clock: Callable[[], datetime]) -> Recorder | None:
        return Recorder(self.meter_provider, clock) if self.metrics else None

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
