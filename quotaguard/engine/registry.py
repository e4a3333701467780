"""The registry of rule codes: every code a :class:`~quotaguard.engine.model.Violation` can
carry, what it checks, its numbers, where the rule comes from and what the user does about it.

Each module that defines a code registers it where the constant is defined, in one call::

    RULE_UNSET = register("ibm.max_execution_time.unset", "...", source=Source.SEED, ...)

so a code and its entry cannot drift apart, and a branch that adds a code adds one line beside
it. The documentation's rules reference is generated from :func:`rules` (``docs/hooks.py``);
the test suite fails when a code is emitted that is not registered, or registered and never
emitted by any test. Registration is at import time: import the provider packages
(``quotaguard.ibm``, ``quotaguard.braket``) before reading the whole registry.
"""

from __future__ import annotations

import enum
import re

import attrs

from quotaguard.errors import InvalidInput

__all__ = ["RuleInfo", "Source", "lookup", "register", "rules"]

#: Dotted lower-case words: ``budget.remaining``, ``ibm.payload.input_too_large``.
CODE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")


class Source(enum.StrEnum):
    """Where a rule's behaviour and numbers come from."""

    SEED = "seed document"
    LIVE = "live API"
    SDK = "SDK code"
    QUOTAGUARD = "quotaguard"


@attrs.frozen
class RuleInfo:
    """One rule code's entry in the registry (and one row of the rules reference)."""

    code: str
    #: What the rule checks, in one line.
    summary: str
    #: Where the behaviour comes from (one or more of :class:`Source`).
    sources: tuple[Source, ...]
    #: The document, endpoint or SDK function it is read from.
    reference: str
    #: What the user does about it.
    action: str
    #: The figures the rule applies ("" when it has none).
    numbers: str = ""


_REGISTRY: dict[str, RuleInfo] = {}


def register(
    code: str,
    summary: str,
    *,
    source: Source | tuple[Source, ...],
    reference: str,
    action: str,
    numbers: str = "",
) -> str:
    """Register ``code`` and return it, so the call can stand where the constant is defined.

    Registering the same entry twice (a module reloaded) is harmless; registering a code
    again with different contents is refused, as is a malformed code or an empty field.
    """
    if not isinstance(code, str) or CODE.fullmatch(code) is None:
        raise InvalidInput("code", f"expected dotted lower-case words like 'x.y', got {code!r}")
    sources = (source,) if isinstance(source, Source) else tuple(source)
    if not sources or not all(isinstance(s, Source) for s in sources):
        raise InvalidInput("source", f"{code}: expected one or more Source values")
    for name, text in (("summary", summary), ("reference", reference), ("action", action)):
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(name, f"{code}: must say something")
    info = RuleInfo(code, summary, sources, reference, action, numbers)
    known = _REGISTRY.get(code)
    if known is not None and known != info:
        raise InvalidInput("code", f"{code} is already registered with other contents: {known}")
    _REGISTRY[code] = info
    return code


def lookup(code: str) -> RuleInfo | None:
    """The entry for ``code``, or None if no imported module registered it."""
    return _REGISTRY.get(code)


def rules() -> tuple[RuleInfo, ...]:
    """Every registered code, sorted by code."""
    return tuple(sorted(_REGISTRY.values(), key=lambda info: info.code))
