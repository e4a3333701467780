"""OpenTelemetry, when the optional ``otel`` extra (``opentelemetry-api``) is installed.

Nothing here imports it: an application that set a global provider has loaded the API
already, so the global providers are looked up in ``sys.modules`` (no import, no cost without
OTel); only an explicit ``Telemetry(...)`` imports the API. The guard's tracer reaches the
HTTP transport through a context variable (:func:`using`), so the spans of a guard's provider
calls go to the provider it was given; a client used on its own traces to the global provider.
"""

from __future__ import annotations

import contextvars
import sys
from typing import TYPE_CHECKING, Any

from quotaguard._version import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["SCOPE", "global_provider", "is_set", "tracer", "using"]

#: The instrumentation scope every meter and tracer of quotaguard is named after.
SCOPE = "quotaguard"

_TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "quotaguard_tracer", default=None
)


def is_set(provider: Any) -> bool:
    """Whether a global meter or tracer provider is a real one: the API hands out a proxy (or
    a no-op) until the application sets one, and recording to it is wasted work."""
    return not type(provider).__name__.lstrip("_").startswith(("Proxy", "NoOp"))


def global_provider(kind: str) -> Any | None:
    """The global ``"trace"`` or ``"metrics"`` provider the application set, else ``None``."""
    api = sys.modules.get(f"opentelemetry.{kind}")
    if api is None:  # never imported: nobody set a provider
        return None
    provider = api.get_tracer_provider() if kind == "trace" else api.get_meter_provider()
    return provider if is_set(provider) else None


def using(tracer: Tracer | None) -> contextvars.Token[Tracer | None]:
    """Make ``tracer`` the one provider calls in this context trace to (reset the token)."""
    return _TRACER.set(tracer)


def reset(token: contextvars.Token[Tracer | None]) -> None:
    _TRACER.reset(token)


def tracer() -> Tracer | None:
    """The guard's tracer in this context, else the global one once set, else ``None``."""
    chosen = _TRACER.get()
    if chosen is not None:
        return chosen
    provider = global_provider("trace")
    return None if provider is None else provider.get_tracer(SCOPE, __version__)
