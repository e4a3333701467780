"""How ``status`` / ``ibm-limit show`` word an IBM instance reading: the limit the guard
charges against, including none (a paid plan) and unknown (refused until declared)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quotaguard.cli.output import limit_on_server, print_usage


def row(limit: str | None, source: str, plan: str | None = "open") -> dict[str, object]:
    return {
        "service_crn": "crn:v1:x",
        "plan_id": "7c4e1a52",
        "plan": plan,
        "plan_source": "account",
        "consumed_seconds": Decimal(300),
        "limit_seconds": None if limit is None else Decimal(limit),
        "limit_source": source,
        "limit_reached": False,
        "period_start": None,
        "period_end": None,
    }


@pytest.mark.parametrize(
    ("reading", "says"),
    [
        (row("600", "usage_allocation_seconds"), "used 300 s of 600 s (allocation, no limit"),
        (row(None, "none", "premium"), "no limit: the guard tracks it and refuses nothing"),
        (row(None, "unknown", None), "the guard refuses work on it until the plan is declared"),
    ],
)
def test_the_reading_is_worded_as_the_guard_decides(
    capsys: pytest.CaptureFixture[str], reading: dict[str, object], says: str
) -> None:
    print_usage(reading)
    printed = " ".join(capsys.readouterr().out.split())
    assert says in printed


def test_an_ibm_budget_is_never_marked_gone() -> None:
    for reading in (row("600", "open_plan"), row(None, "none"), row(None, "unknown")):
        found = {"ibm": reading}
        assert limit_on_server("ibm:crn:v1:x", found) is not False
