"""The burn-down forecast in ``status`` and at the end of ``demo`` (subprocess, emulator)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quotaguard import Budget, Charge, SQLiteLedger, Unit
from tests._support.cli import run


async def test_status_shows_each_budgets_forecast_and_json_carries_it(world) -> None:  # type: ignore[no-untyped-def]
    _, seed, env = world
    async with SQLiteLedger(env["QUOTAGUARD_LEDGER_PATH"]) as ledger:
        await ledger.put_budget(Budget("team:x", Unit.USD, Decimal(100)))
        now = datetime.now(UTC)
        held = (await ledger.reserve([Charge("team:x", Decimal(7), Unit.USD)], now=now)).reservation
        assert held is not None
        await ledger.commit(held.id, now=now)
        await ledger.reserve([Charge("team:x", Decimal(3), Unit.USD)], now=now)  # held only
    code, out, err = await run("status", "--json", env=env)
    assert code == 0, err
    budgets = {b["key"]: b for b in json.loads(out)["budgets"]}
    team = budgets["team:x"]["forecast"]
    # 7 USD committed over the 7-day basis (no window): 1 USD/day; 90 left (the hold counts).
    assert team["rate_per_day"] == "1" and team["on_track"] is False
    runs_out = datetime.fromisoformat(team["runs_out_at"])
    assert abs(runs_out - (now + timedelta(days=90))) < timedelta(minutes=1)
    assert team["resets_at"] is None and team["line"].endswith("(no reset)")
    ibm = budgets[f"ibm:{seed.service_crn}"]["forecast"]
    assert ibm["on_track"] is True and ibm["runs_out_at"] is None  # nothing spent yet
    code, out, _ = await run("status", env=env)
    assert code == 0
    assert "Forecast (committed spend over the last 7 days" in out
    assert f"team:x: runs out on {runs_out.date().isoformat()} at 1.00 USD/day" in out


async def test_demo_ends_with_the_forecast_line_of_each_budget(base_env: dict[str, str]) -> None:
    code, out, err = await run("demo", env=base_env)
    assert code == 0, err
    lines = out.rstrip().splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("Forecast ("))
    # The demo ends with the forecast: one line per budget, indented (a long one may wrap
    # onto an unindented line).
    keys = [line[2:].split(": ", 1)[0] for line in lines[heading + 1 :] if line[:2] == "  "]
    assert keys == ["braket:…Forte-1", "ibm:…instance-open", "team:physics", "team:research"]
    code, out, err = await run("demo", "--json", env=base_env)
    assert code == 0, err
    for budget in json.loads(out)["budgets"]:
        assert budget["forecast"]["line"].startswith(f"{budget['key']}: ")
        assert Decimal(budget["forecast"]["rate_per_day"]) > 0  # every budget spent some
