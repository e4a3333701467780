"""The audit export of ``quotaguard report``: one row per reservation, as CSV or JSON Lines.

JSON Lines carries each record whole: its charges and, once committed, what it spent. CSV
has fixed columns, then two per budget exported, ``<key> reserved (<unit>)`` and ``<key>
actual (<unit>)``: what the reservation held on that budget and, once committed, what it
spent there (empty where it has no charge), so a column of actuals sums to what the budget
committed. Instants are ISO 8601 UTC, amounts exact decimal text. Rows are written as the
ledger's pages are read, into a file beside the target that is renamed onto it at the end:
an export that fails leaves no half file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

from quotaguard.engine.amounts import money_context
from quotaguard.engine.model import Budget, Charge, Reservation, ReservationState

__all__ = ["STDOUT", "csv_header", "csv_row", "json_record", "write_export"]

#: The file name that means standard output.
STDOUT = "-"

_FIXED = (
    "id",
    "state",
    "created_at",
    "lease_expires_at",
    "ended_at",
    "external_id",
    "sent_at",
    "in_doubt_since",
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _charges(charges: Sequence[Charge]) -> list[dict[str, str]]:
    return [{"budget": c.budget, "amount": str(c.amount), "unit": c.unit.value} for c in charges]


def json_record(r: Reservation) -> dict[str, object]:
    """One reservation as the JSON Lines export writes it."""
    return {
        "id": r.id,
        "state": r.state.value,
        "created_at": _iso(r.created_at),
        "lease_expires_at": _iso(r.lease_expires_at),
        "ended_at": _iso(r.ended_at),
        "external_id": r.external_id,
        "sent_at": _iso(r.sent_at),
        "in_doubt_since": _iso(r.in_doubt_since),
        "charges": _charges(r.charges),
        "actual": None if r.actual is None else _charges(r.actual),
    }


def csv_header(budgets: Sequence[Budget]) -> list[str]:
    amounts = [
        f"{b.key} {what} ({b.unit.value})" for b in budgets for what in ("reserved", "actual")
    ]
    return [*_FIXED, *amounts]


def csv_row(r: Reservation, budgets: Sequence[Budget]) -> list[str]:
    record = json_record(r)
    cells = ["" if record[k] is None else str(record[k]) for k in _FIXED]
    committed = r.state is ReservationState.COMMITTED
    for b in budgets:
        held = [c.amount for c in r.charges if c.budget == b.key]
        spent = [c.amount for c in r.actual or () if c.budget == b.key]
        with money_context():
            cells.append(str(sum(held, Decimal(0))) if held else "")
            cells.append(str(sum(spent, Decimal(0))) if committed and (held or spent) else "")
    return cells


async def write_export(
    target: str, kind: str, rows: AsyncIterator[Reservation], budgets: Sequence[Budget]
) -> int:
    """Write ``rows`` to ``target`` (``-``: stdout) as ``kind`` (csv, jsonl); how many."""
    count = 0
    with _opened(target) as fh:
        writer = csv.writer(fh, lineterminator="\n") if kind == "csv" else None
        if writer is not None:
            writer.writerow(csv_header(budgets))
        async for r in rows:
            if writer is not None:
                writer.writerow(csv_row(r, budgets))
            else:
                fh.write(json.dumps(json_record(r), separators=(",", ":")) + "\n")
            count += 1
    return count


@contextlib.contextmanager
def _opened(target: str) -> Iterator[IO[str]]:
    if target == STDOUT:
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(target)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
