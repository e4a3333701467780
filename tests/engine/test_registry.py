"""The rule-code registry: what it accepts, that every rule constant is in it, and the suite's
two checks (tests/_support/rule_codes.py): emitted codes are registered, registered ones emitted."""

from __future__ import annotations

import importlib
import pkgutil
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import quotaguard
from quotaguard.engine import registry
from quotaguard.engine.registry import Source, register
from quotaguard.errors import InvalidInput
from tests._support.rule_codes import ROOT, RuleCodes, fix_hint, plugin_of
from tests._support.subpytest import run_pytest

ENTRY = {"source": Source.LIVE, "reference": "a page", "action": "do a thing"}


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Codes registered by a test vanish after it (else the completeness check would see them)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def all_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(quotaguard.__path__, "quotaguard.")
        if not info.name.endswith("__main__")
    ]


def test_register_returns_the_code_and_rules_lists_it_sorted(scratch_registry: None) -> None:
    assert register("zz.test.last", "checks z", numbers="7 s", **ENTRY) == "zz.test.last"
    assert register("aa.test.first", "checks a", **ENTRY) == "aa.test.first"
    codes = [info.code for info in registry.rules()]
    assert codes == sorted(codes)
    info = registry.lookup("zz.test.last")
    assert info is not None
    assert (info.summary, info.numbers, info.sources) == ("checks z", "7 s", (Source.LIVE,))
    # The same entry again (a module reloaded) is harmless.
    assert register("zz.test.last", "checks z", numbers="7 s", **ENTRY) == "zz.test.last"


@pytest.mark.parametrize(
    ("code", "kwargs", "field"),
    [
        ("Budget.Remaining", {}, "code"),
        ("nodots", {}, "code"),
        ("a.b.", {}, "code"),
        ("a.b", {"reference": " "}, "reference"),
        ("a.b", {"action": ""}, "action"),
        ("a.b", {"source": ()}, "source"),
        ("a.b", {"source": ("live API",)}, "source"),
    ],
)
def test_register_refuses_bad_entries(
    scratch_registry: None, code: str, kwargs: dict[str, object], field: str
) -> None:
    before = registry.rules()
    with pytest.raises(InvalidInput) as caught:
        register(code, "summary", **{**ENTRY, **kwargs})  # type: ignore[arg-type]
    assert caught.value.field == field
    assert registry.rules() == before


def test_register_refuses_a_code_again_with_other_contents(scratch_registry: None) -> None:
    register("zz.test.twice", "first", **ENTRY)
    with pytest.raises(InvalidInput, match=r"zz\.test\.twice is already registered"):
        register("zz.test.twice", "second", **ENTRY)
    info = registry.lookup("zz.test.twice")
    assert info is not None and info.summary == "first"


def test_every_rule_constant_in_the_package_is_registered() -> None:
    """A ``RULE_* = "..."`` constant anywhere in quotaguard that skipped ``register`` fails here,
    before any test has to emit it."""
    missing = []
    for name in all_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("RULE_") and isinstance(value, str) and not registry.lookup(value):
                missing.append(f"{name}.{attr}: {fix_hint(value)}")
    assert not missing, "\n".join(missing)
    assert len(registry.rules()) >= 15


def test_every_entry_names_a_source_and_an_action() -> None:
    for name in all_modules():
        importlib.import_module(name)
    for info in registry.rules():
        assert info.summary.strip() and info.action.strip() and info.reference.strip(), info
        assert info.sources, info


@pytest.mark.slow
def test_a_test_fails_when_the_library_emits_an_unregistered_code(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            from datetime import UTC, datetime
            from quotaguard.engine import Budget, Unit, rules

            def test_emits(monkeypatch):
                monkeypatch.setattr(rules, "RULE_REMAINING", "budget.made_up")
                budget = Budget("team:x", Unit.USD, 1)
                found = rules.evaluate({"team:x": 2_000_000}, {"team:x": budget}, {},
                                       datetime(2026, 1, 1, tzinfo=UTC))
                assert found[0].rule == "budget.made_up"

            def test_made_up_by_a_test_is_not_emitted():
                from quotaguard.engine import Violation
                Violation("test.only.code", "built by test code, not by the library")
            """
        )
    )
    result = run_pytest("-p", "tests._support.rule_codes", "test_inner.py", cwd=tmp_path)
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    assert "quotaguard/engine/rules.py:" in result.stdout
    assert "rule code 'budget.made_up' is not registered" in result.stdout
    assert 'RULE_X = register("budget.made_up"' in result.stdout


@pytest.mark.slow
def test_the_completeness_check_is_skipped_by_name_on_a_partial_run() -> None:
    result = run_pytest(f"tests/engine/test_registry.py::{COMPLETENESS}", cwd=ROOT)
    assert "1 skipped" in result.stdout, result.stdout + result.stderr
    assert "partial run" in result.stdout
    assert COMPLETENESS in result.stdout


def test_missing_lists_registered_codes_no_test_emitted(
    request: pytest.FixtureRequest, scratch_registry: None
) -> None:
    register("zz.test.never", "never emitted", **ENTRY)
    plugin = plugin_of(request.config)
    assert "zz.test.never" in plugin.missing()
    assert all(code not in plugin.emitted for code in plugin.missing())


COMPLETENESS = "test_every_registered_code_is_emitted"


@pytest.mark.parametrize(
    ("args", "options", "partial"),
    [
        (["tests"], {}, None),  # nox -s tests: testpaths, --ignore=tests/aioresponses
        (["."], {}, None),
        (["tests/engine"], {}, "path tests/engine"),
        (["tests/engine/test_registry.py::x"], {}, "path tests/engine/test_registry.py::x"),
        (["tests"], {"keyword": "redis"}, "-k 'redis'"),
        (["tests"], {"markexpr": "not slow"}, "-m 'not slow'"),
        (["tests"], {"ignore": ["tests/aioresponses", "tests/cli"]}, "--ignore"),
    ],
)
def test_which_runs_count_as_the_whole_suite(
    monkeypatch: pytest.MonkeyPatch, args: list[str], options: dict[str, object], partial: str
) -> None:
    monkeypatch.chdir(ROOT)
    option = SimpleNamespace(
        **{"keyword": "", "markexpr": "", "deselect": None, "ignore_glob": None}
        | {"ignore": ["tests/aioresponses"]}
        | options
    )
    session = SimpleNamespace(config=SimpleNamespace(option=option, args=args))
    codes = RuleCodes()
    codes.judge_completeness(session)  # type: ignore[arg-type]
    assert codes.partial == partial


def test_every_registered_code_is_emitted(request: pytest.FixtureRequest) -> None:
    """Runs last (the plugin orders it); needs the whole suite to have run before it."""
    plugin = plugin_of(request.config)
    if plugin.partial:
        pytest.skip(f"partial run ({plugin.partial}): this check needs the whole of tests/")
    for name in all_modules():
        importlib.import_module(name)
    missing = plugin.missing()
    assert not missing, (
        "registered but never emitted by any test (write a test that makes the library emit "
        "it, or remove the registration): " + ", ".join(missing)
    )
