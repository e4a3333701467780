"""The import layers hold, and the contract that keeps them fails on an upward import.

``nox -s lint`` runs ``lint-imports`` on the tree; these tests show the contract has teeth:
the same check on a copy of the package with one deliberate upward import (the engine
importing the guard) or one cycle fails, naming the arrow.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Some import-linter releases colour their report even into a pipe: read it plain.
    done.stdout = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    return done


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, to break on purpose."""
    shutil.copytree(ROOT / "quotaguard", tmp_path / "quotaguard")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tree: Path) -> None:
    amounts = tree / "quotaguard" / "engine" / "amounts.py"
    amounts.write_text(amounts.read_text() + "\nimport quotaguard.guard.core  # upward\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "Layers point down BROKEN" in result.stdout
    assert "quotaguard.engine.amounts -> quotaguard.guard.core" in result.stdout


def test_a_cycle_breaks_the_acyclic_contract(tree: Path) -> None:
    # ibm.models is below ibm.rules (rules import it); make models import rules back.
    models = tree / "quotaguard" / "ibm" / "models.py"
    models.write_text(models.read_text() + "\nimport quotaguard.ibm.rules  # a cycle\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "No import cycles, at any depth BROKEN" in result.stdout


def test_the_emulator_importing_the_guard_breaks_its_contract(tree: Path) -> None:
    faults = tree / "quotaguard" / "testing" / "faults.py"
    faults.write_text(faults.read_text() + "\nimport quotaguard.engine  # not the emulator's\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "The emulator stands alone" in result.stdout


CLOCK_READS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
}


def clock_reads(source: str) -> list[str]:
    """``datetime.now()``-style calls in ``source``: the engine takes ``now`` as an argument."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) in CLOCK_READS
        ):
            found.append(f"{node.func.value.id}.{node.func.attr}() at line {node.lineno}")
    return found


def test_the_engine_reads_no_clock() -> None:
    reads = {
        str(path.relative_to(ROOT)): clock_reads(path.read_text())
        for path in sorted((ROOT / "quotaguard" / "engine").glob("*.py"))
    }
    assert {path: found for path, found in reads.items() if found} == {}


def test_the_clock_check_sees_a_clock_read() -> None:
    assert clock_reads("from datetime import datetime\nx = datetime.now()\n") == [
        "datetime.now() at line 2"
    ]
