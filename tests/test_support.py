"""The suite's own layout: helpers live in tests/_support, conftest modules hold only fixtures."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "_support"


def _modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, relative ones resolved against its package."""
    package = path.relative_to(TESTS.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_nothing_imports_a_conftest_or_a_test_module() -> None:
    # A fixture or helper a test wants comes from pytest or tests._support, never from
    # another module's conftest or tests.
    bad = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in _modules()
        for line, module in _imported(path)
        if module.startswith("tests.") and module.split(".")[-1].startswith(("conftest", "test_"))
    ]
    assert bad == []


def test_conftest_modules_hold_fixtures_and_hooks_only() -> None:
    bad = []
    for path in _modules():
        if path.name != "conftest.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                bad.append(f"{path.relative_to(TESTS.parent)}: class {node.name}")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                fixture = any("fixture" in ast.unparse(d) for d in node.decorator_list)
                if not (fixture or node.name.startswith(("pytest_", "_"))):
                    bad.append(f"{path.relative_to(TESTS.parent)}: def {node.name}")
    assert bad == []


def test_the_fake_clock_is_the_public_one() -> None:
    # FakeClock is quotaguard.testing's; the suite keeps no copy of its own.
    defined = [
        path.relative_to(TESTS.parent)
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name == "FakeClock"
    ]
    assert defined == []


def test_what_spawned_workers_import_stays_free_of_pytest() -> None:
    # Spawned processes import tests._support.workers by its module path; pytest in that
    # import chain would slow every worker's start for nothing.
    seen: set[str] = set()
    todo = ["tests._support.workers"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = TESTS.parent.joinpath(*module.split(".")).with_suffix(".py")
        for _, name in _imported(path):
            if name == "pytest" or name.startswith("pytest."):
                raise AssertionError(f"{module} imports pytest")
            if name.startswith("tests.") and (
                TESTS.parent.joinpath(*name.split(".")).with_suffix(".py").exists()
            ):
                todo.append(name)
    assert "tests._support.times" in seen
