"""Work types for IBM: a job (:class:`IBMJob`) and a session or batch (:class:`IBMSession`).

Both are frozen and validated on construction: bad input raises :class:`InvalidInput` naming
the field, before anything is estimated, reserved or sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import attrs

from quotaguard.errors import InvalidInput
from quotaguard.ibm.sansio import check_crn

__all__ = ["MAX_EXECUTION_TIME_MAX", "IBMJob", "IBMSession", "parse_duration"]

#: IBM's bound for ``max_execution_time`` (a signed 32-bit integer of seconds).
MAX_EXECUTION_TIME_MAX = 2**31 - 1

# Used with fullmatch only: "$" would also match before a trailing newline.
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: object, field: str) -> int:
    """Whole seconds from an int or a string like ``"1h30m"``, ``"90m"``, ``"45s"``, ``"300"``."""
    if isinstance(value, bool):
        raise InvalidInput(field, f"expected seconds or a duration like '1h30m', got {value!r}")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text.isdigit():
            seconds = int(text)
        else:
            match = _DURATION.fullmatch(text)
            if not text or match is None:
                raise InvalidInput(
                    field, f"cannot read {value!r}; use seconds or a duration like '1h30m'"
                )
            hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise InvalidInput(
            field, f"expected seconds or a duration like '1h30m', got {type(value).__name__}"
        )
    if not 1 <= seconds <= MAX_EXECUTION_TIME_MAX:
        raise InvalidInput(field, f"must be 1..{MAX_EXECUTION_TIME_MAX} seconds, got {seconds}")
    return seconds


def _backend(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise InvalidInput(
            "backend", "expected a backend name such as 'ibm_torino' (no control characters)"
        )
    return value


def _optional_seconds(field: str) -> Callable[[object], int | None]:
    def convert(value: object) -> int | None:
        return None if value is None else parse_duration(value, field)

    return convert


def _max_execution_time(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            "max_execution_time", f"expected whole seconds (int), got {type(value).__name__}"
        )
    if not 1 <= value <= MAX_EXECUTION_TIME_MAX:
        raise InvalidInput(
            "max_execution_time", f"must be 1..{MAX_EXECUTION_TIME_MAX} seconds, got {value}"
        )
    return value


def _bytes(field: str) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(field, f"expected a byte count (int >= 0), got {value!r}")
        return value

    return convert


def _optional_id(field: str) -> Callable[[object], str | None]:
    def convert(value: object) -> str | None:
        if value is not None and (
            not isinstance(value, str) or not value.strip() or not value.isprintable()
        ):
            raise InvalidInput(
                field,
                f"expected a non-empty string without control characters, or None; got {value!r}",
            )
        return value

    return convert


def _session_id(value: object) -> str | None:
    return _optional_id("session_id")(value)


def _instance(value: object) -> str | None:
    # The work is checked and charged against this instance: it must be a CRN the client can
    # send as Service-CRN, refused here rather than at the first read.
    return None if value is None else check_crn(value, "instance")


def _program_bytes(value: object) -> int:
    return _bytes("program_bytes")(value)


def _input_bytes(value: object) -> int:
    return _bytes("input_bytes")(value)


def _max_time(value: object) -> int | None:
    return _optional_seconds("max_time")(value)


def _interactive_ttl(value: object) -> int | None:
    return _optional_seconds("interactive_ttl")(value)


def _active_ttl(value: object) -> int | None:
    return _optional_seconds("active_ttl")(value)


def _simulator(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("simulator", f"expected True or False, got {value!r}")
    return value


@attrs.frozen
class IBMJob:
    """One Qiskit Runtime job. ``max_execution_time=None`` reserves the 3 h system cap."""

    backend: str = attrs.field(converter=_backend)
    max_execution_time: int | None = attrs.field(default=None, converter=_max_execution_time)
    session_id: str | None = attrs.field(default=None, converter=_session_id)
    program_bytes: int = attrs.field(default=0, converter=_program_bytes)
    input_bytes: int = attrs.field(default=0, converter=_input_bytes)
    simulator: bool = attrs.field(default=False, converter=_simulator)
    #: Another instance's CRN than the client's (qiskit's ``instance=``).
    instance: str | None = attrs.field(default=None, converter=_instance)


def _mode(value: object) -> Literal["dedicated", "batch"]:
    if value == "dedicated":
        return "dedicated"
    if value == "batch":
        return "batch"
    raise InvalidInput("mode", f"expected 'dedicated' or 'batch', got {value!r}")


@attrs.frozen
class IBMSession:
    """A session (``mode="dedicated"``) or batch. A session bills wall-clock: ``max_time``
    (``None``: the plan's maximum) is reserved when it opens, raised by its jobs' largest
    ceiling as they are admitted. A batch bills its jobs' QPU time: each job holds its own."""

    backend: str = attrs.field(converter=_backend)
    max_time: int | None = attrs.field(default=None, converter=_max_time)
    mode: Literal["dedicated", "batch"] = attrs.field(default="dedicated", converter=_mode)
    interactive_ttl: int | None = attrs.field(default=None, converter=_interactive_ttl)
    active_ttl: int | None = attrs.field(default=None, converter=_active_ttl)
    instance: str | None = attrs.field(default=None, converter=_instance)
