"""``quotaguard report`` as a user runs it (subprocess): on the demo's kept ledger, the CSV
has one row per reservation and its actuals sum to what each budget committed, and the PNG
is drawn (the one in docs/ is this test's, see ``QUOTAGUARD_WRITE_DOCS``); filters; the
terminal chart; bad input refused before anything is written."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quotaguard import Budget, Charge, SQLiteLedger, Unit
from quotaguard.ledger.base import from_epoch_us
from tests._support.cli import run

ROOT = Path(__file__).resolve().parents[2]
DOCS_PNG = ROOT / "docs" / "images" / "report-demo.png"
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo once, its ledger kept; the report's CSV, JSON Lines and PNG of it."""
    tmp = tmp_path_factory.mktemp("demo")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "IBMCLOUD_", "QISKIT_", "QUOTAGUARD_", "COLUMNS"))
    }
    env.update(HOME=str(tmp), XDG_STATE_HOME=str(tmp / "state"), XDG_CONFIG_HOME=str(tmp))
    ledger = tmp / "demo.sqlite3"

    async def go() -> dict[str, Any]:
        code, out, err = await run("demo", "--json", "--keep-ledger", str(ledger), env=env)
        assert code == 0, err
        paths = {k: tmp / f"report.{k}" for k in ("csv", "jsonl", "png")}
        code, _, err = await run(
            "--ledger",
            str(ledger),
            "report",
            "--csv",
            str(paths["csv"]),
            "--jsonl",
            str(paths["jsonl"]),
            "--plot",
            str(paths["png"]),
            env=env,
        )
        assert code == 0, err
        return {"demo": json.loads(out), "ledger": ledger, "env": env, **paths}

    return asyncio.run(go())


async def _committed(path: Path) -> tuple[dict[str, Decimal], set[str]]:
    async with SQLiteLedger(path) as ledger:
        totals = {
            b.key: await ledger.committed_between(b.key, from_epoch_us(0), FAR)
            for b in await ledger.budgets()
        }
        ids = {r.id async for r in ledger.reservations()}
    return totals, ids


async def test_the_demo_csv_has_a_row_per_reservation_summing_to_the_committed_totals(
    demo_run: dict[str, Any],
) -> None:
    totals, ids = await _committed(demo_run["ledger"])
    rows = list(csv.DictReader(io.StringIO(demo_run["csv"].read_text())))
    admitted = [s for s in demo_run["demo"]["submissions"] if s["admitted"]]
    assert len(rows) == len(ids) == len(admitted) == 14  # rejections are not rows
    assert {r["id"] for r in rows} == ids
    assert len(totals) == 4 and all(totals.values())
    for key, total in totals.items():
        (column,) = [c for c in rows[0] if c.startswith(f"{key} actual (")]
        assert sum(Decimal(r[column] or 0) for r in rows) == total, key
    assert {r["state"] for r in rows} == {"committed"}  # the demo settles everything
    assert all(r["external_id"] and r["sent_at"] for r in rows)
    records = [json.loads(line) for line in demo_run["jsonl"].read_text().splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in rows]
    assert records[0]["charges"] and records[0]["actual"] is not None


def test_the_demo_png_is_800_px_wide_and_the_docs_show_it(demo_run: dict[str, Any]) -> None:
    data = demo_run["png"].read_bytes()
    width, height = png_size(data)
    assert width == 800 and height >= 4 * 250  # four budgets, a panel each
    if os.environ.get("QUOTAGUARD_WRITE_DOCS") == "1":  # regenerate the page's picture
        DOCS_PNG.parent.mkdir(exist_ok=True)
        shutil.copyfile(demo_run["png"], DOCS_PNG)
    assert png_size(DOCS_PNG.read_bytes())[0] == 800
    assert "![" in (page := (ROOT / "docs" / "cli.md").read_text())
    assert "images/report-demo.png" in page


async def test_svg_and_the_terminal_chart_of_the_same_ledger(
    demo_run: dict[str, Any], tmp_path: Path
) -> None:
    svg = tmp_path / "r.svg"
    args = ("--ledger", str(demo_run["ledger"]), "report", "--budget", "team:research")
    code, out, err = await run(*args, "--plot", str(svg), env=demo_run["env"])
    assert code == 0, err
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    lines = out.splitlines()
    assert lines[0] == "team:research (USD)"
    limit_line = next(line for line in lines if line.endswith(" limit"))
    assert limit_line.lstrip().startswith("30.00 ┤─")
    assert any("●" in line for line in lines) and any("│" in line for line in lines)
    assert "● committed  · forecast  ─ limit  │ now (" in out
    assert "team:research: runs out on" in out or "team:research: exhausted" in out
    assert "team:physics" not in out


@pytest.fixture
async def known(base_env: dict[str, str]) -> dict[str, Any]:
    """A ledger with four reservations at known times on budgets a and b."""
    t0 = datetime(2026, 3, 10, tzinfo=UTC)
    ids: dict[str, str] = {}
    async with SQLiteLedger(base_env["QUOTAGUARD_LEDGER_PATH"], time_source="caller") as ledger:
        for key in ("a", "b"):
            await ledger.put_budget(Budget(key, Unit.USD, Decimal(100)))
        for name, key, day in (("a1", "a", 0), ("a2", "a", 2), ("b1", "b", 1), ("ab", "a", 3)):
            charges = [Charge(key, Decimal(day + 1), Unit.USD)]
            if name == "ab":
                charges.append(Charge("b", Decimal(1), Unit.USD))
            at = t0 + timedelta(days=day)
            held = (await ledger.reserve(charges, now=at)).reservation
            assert held is not None
            ids[name] = held.id
            await ledger.commit(held.id, now=at + timedelta(hours=1))
    return {"env": base_env, "ids": ids}


async def _jsonl(env: dict[str, str], *args: str) -> set[str]:
    code, out, err = await run("report", "--jsonl", "-", *args, env=env)
    assert code == 0, err
    return {json.loads(line)["id"] for line in out.splitlines()}


async def test_budget_and_time_filters(known: dict[str, Any]) -> None:
    env, ids = known["env"], known["ids"]

    def named(*names: str) -> set[str]:
        return {ids[n] for n in names}

    assert await _jsonl(env) == named("a1", "a2", "b1", "ab")
    assert await _jsonl(env, "--budget", "b") == named("b1", "ab")
    assert await _jsonl(env, "--budget", "a", "--budget", "b") == named("a1", "a2", "b1", "ab")
    assert await _jsonl(env, "--since", "2026-03-11", "--until", "2026-03-12T23:00") == named(
        "a2", "b1"
    )
    assert await _jsonl(env, "--budget", "a", "--since", "2026-03-12T00:30:00+00:00") == named(
        "a2", "ab"
    )
    code, out, err = await run("report", "--budget", "b", "--csv", "-", env=env)
    assert code == 0, err
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert header[-2:] == ["b reserved (USD)", "b actual (USD)"] and len(header) == 10
    assert sorted(r[-1] for r in rows) == ["1", "2"]
    code, out, err = await run("report", "--budget", "b", "--json", env=env)
    assert code == 0, err
    (series,) = json.loads(out)
    assert (series["key"], series["committed"][-1]["total"], series["used"]) == ("b", "3", "3")
    assert series["forecast"]["line"].startswith("b: ")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--since", "2026-03-12", "--until", "2026-03-11"), "--until 2026-03-11 is before"),
        (("--since", "last tuesday"), "--since 'last tuesday': not an ISO 8601 date"),
        (("--plot", "{tmp}/r.gif"), "the name must end in .png or .svg"),
        (("--budget", "nope"), "nope"),
        (("--csv", "-", "--jsonl", "-"), "only one of --csv -, --jsonl - and --json"),
        (("--csv", "{tmp}/missing/r.csv"), "no such directory"),
    ],
)
async def test_bad_input_is_one_line_and_writes_nothing(
    known: dict[str, Any], tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    given = [a.format(tmp=out_dir) for a in args]
    # A file asked for first: the bad option after it (the last of a repeated one wins).
    code, out, err = await run(
        "report", "--jsonl", str(out_dir / "r.jsonl"), *given, env=known["env"]
    )
    assert code == 2, (out, err)
    assert err.startswith("quotaguard: ") and says in err and len(err.strip().splitlines()) == 1
    assert list(out_dir.iterdir()) == []


async def test_a_missing_ledger_is_not_created(base_env: dict[str, str]) -> None:
    code, out, err = await run("report", env=base_env)
    assert code == 0, err
    assert "not created by report" in out and "no budgets to report" in out
    assert not Path(base_env["QUOTAGUARD_LEDGER_PATH"]).exists()


async def test_without_matplotlib_plot_says_what_to_install_in_one_line(
    known: dict[str, Any], tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
    )
    env = {**known["env"], "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(ROOT)])}
    png, jsonl = tmp_path / "r.png", tmp_path / "r.jsonl"
    code, out, err = await run("report", "--plot", str(png), "--jsonl", str(jsonl), env=env)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "pip install 'matplotlib>=3.9'" in err and "quotaguard[plot]" in err
    assert not png.exists() and not jsonl.exists()
    code, out, err = await run("report", "--budget", "a", env=env)  # the rest works without
    assert code == 0 and "a (USD)" in out, err
