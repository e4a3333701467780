"""A JSON body checked against a botocore output shape (rest-json): what botocore's own parser
does not check. It reads the members it knows and drops the rest, and never asks for required
ones, so an emulator answer missing ``timePeriod`` parses without a word. Here every required
member, every type, enum, length and range, timestamp format and unknown member is a finding.
"""

from __future__ import annotations

import re
from datetime import datetime

from botocore.model import ListShape, MapShape, Shape, StructureShape

__all__ = ["body_mismatches"]

_BODY_LOCATIONS = (None, "")  # header, headers, statusCode and uri members are not in the body


def body_mismatches(shape: StructureShape | None, body: object) -> list[str]:
    """Every way ``body`` (the decoded JSON of a response) breaks ``shape``, as ``$.path: why``."""
    if shape is None:
        return [] if body in (None, {}) else [f"$: the operation has no output, got {body!r}"]
    out: list[str] = []
    _check(shape, body, "$", out, "unixTimestamp")
    return out


def _check(shape: Shape, value: object, path: str, out: list[str], ts_default: str) -> None:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        _structure(shape, value, path, out, ts_default)
    elif kind == "list":
        assert isinstance(shape, ListShape)
        if not isinstance(value, list):
            out.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        _size(shape, len(value), path, out)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", out, ts_default)
    elif kind == "map":
        assert isinstance(shape, MapShape)
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object (map), got {type(value).__name__}")
            return
        for key, item in value.items():
            _check(shape.key, key, f"{path}.<key {key!r}>", out, ts_default)
            _check(shape.value, item, f"{path}.{key}", out, ts_default)
    elif kind == "string":
        _string(shape, value, path, out)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            out.append(f"{path}: expected an integer, got {value!r}")
        else:
            _size(shape, value, path, out)
    elif kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append(f"{path}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{path}: expected a boolean, got {value!r}")
    elif kind == "timestamp":
        _timestamp(shape.serialization.get("timestampFormat", ts_default), value, path, out)
    else:  # blob, document: nothing botocore's braket model uses in a body today
        out.append(f"{path}: no check written for type {kind!r}; add one")


def _structure(
    shape: StructureShape, value: object, path: str, out: list[str], ts_default: str
) -> None:
    if not isinstance(value, dict):
        out.append(f"{path}: expected an object ({shape.name}), got {type(value).__name__}")
        return
    wire = {
        member.serialization.get("name", name): (name, member)
        for name, member in shape.members.items()
        if member.serialization.get("location") in _BODY_LOCATIONS
    }
    present = set()
    for key, item in value.items():
        if key not in wire:
            out.append(f"{path}.{key}: not a member of {shape.name}")
            continue
        name, member = wire[key]
        present.add(name)
        if item is None:
            out.append(f"{path}.{key}: null (omit the member instead)")
            continue
        fmt = member.serialization.get("timestampFormat", ts_default)
        _check(member, item, f"{path}.{key}", out, fmt)
    for name in shape.required_members:
        member = shape.members[name]
        if member.serialization.get("location") in _BODY_LOCATIONS and name not in present:
            out.append(f"{path}.{member.serialization.get('name', name)}: required, missing")


def _string(shape: Shape, value: object, path: str, out: list[str]) -> None:
    if not isinstance(value, str):
        out.append(f"{path}: expected a string, got {value!r}")
        return
    if shape.enum and value not in shape.enum:
        out.append(f"{path}: {value!r} is not one of {shape.enum}")
    _size(shape, len(value), path, out)
    pattern = shape.metadata.get("pattern")
    if pattern:
        try:
            compiled = re.compile(pattern)
        except re.error:
            return  # a Java-only construct; the other checks still ran
        if compiled.fullmatch(value) is None and compiled.search(value) is None:
            out.append(f"{path}: {value!r} does not match {pattern!r}")


def _size(shape: Shape, size: int, path: str, out: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        out.append(f"{path}: {size} is below the model's minimum {low}")
    if high is not None and size > high:
        out.append(f"{path}: {size} is above the model's maximum {high}")


def _timestamp(fmt: str, value: object, path: str, out: list[str]) -> None:
    if fmt == "unixTimestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append(f"{path}: expected epoch seconds (unixTimestamp), got {value!r}")
        return
    if fmt == "iso8601":
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if not isinstance(value, str) or parsed is None or parsed.tzinfo is None:
            out.append(f"{path}: expected an ISO 8601 time with a zone, got {value!r}")
        return
    out.append(f"{path}: no check written for timestampFormat {fmt!r}; add one")
