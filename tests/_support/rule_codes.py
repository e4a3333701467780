"""A pytest plugin: every rule code the library emits is registered, and every registered code
is emitted by some test.

Enabled for every run by ``pytest_plugins`` in ``tests/conftest.py``. For the whole session it
wraps :class:`~quotaguard.engine.model.Violation`'s ``__init__`` (which ``attrs.evolve`` calls
too) and records each code built by quotaguard's own code; violations built by test code are not
"emitted" and are ignored, so a test may make up codes.

- A test during which the library emits an unregistered code fails, naming the code, the line
  that built it and the one-line fix.
- ``tests/engine/test_registry.py::test_every_registered_code_is_emitted`` is moved to the end
  of the run and fails when a registered code was never emitted. It needs the whole suite: on a
  partial run (paths narrower than ``tests/``, ``-k``, ``-m``, ``--deselect``, deselected items,
  an ``--ignore`` other than ``tests/aioresponses``) it is skipped with the reason, by name.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

import quotaguard
from quotaguard.engine import registry
from quotaguard.engine.model import Violation

__all__ = ["COMPLETENESS_TEST", "RuleCodes", "fix_hint"]

COMPLETENESS_TEST = "test_every_registered_code_is_emitted"
PACKAGE = Path(quotaguard.__file__).resolve().parent
ROOT = PACKAGE.parent
TESTS = ROOT / "tests"
#: Runs in its own nox session on an older aiohttp; it re-runs client tests, not rules.
SEPARATE_SUITES = frozenset({TESTS / "aioresponses"})
_SKIP_FILES = (str(Path(__file__).resolve()), str(Path(registry.__file__).resolve()))


def fix_hint(code: str) -> str:
    return (
        f"rule code {code!r} is not registered: define its constant as "
        f'RULE_X = register("{code}", "<one-line summary>", source=Source..., reference="...", '
        'action="...") (from quotaguard.engine.registry import Source, register) beside the '
        "other rule constants of its module"
    )


def _caller() -> tuple[str, int] | None:
    """The first frame outside attrs and this plugin: who built the violation."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        attrs_code = "/attr/" in name or "/attrs/" in name or name.startswith("<attrs generated")
        if name not in _SKIP_FILES and not attrs_code:
            return name, frame.f_lineno
        frame = frame.f_back
    return None


class RuleCodes:
    def __init__(self) -> None:
        #: code -> the first test that emitted it.
        self.emitted: dict[str, str] = {}
        self.unregistered: list[tuple[str, str]] = []  # (code, where), for the current test
        self.current = "(outside a test)"
        self.deselected = 0
        self.partial: str | None = None
        self._original: Any = None

    def install(self) -> None:
        original = Violation.__init__
        plugin = self

        def __init__(self: Violation, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            plugin.record(self.rule)

        self._original = original
        Violation.__init__ = __init__  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            Violation.__init__ = self._original  # type: ignore[method-assign]

    def record(self, code: str) -> None:
        caller = _caller()
        if caller is None or not caller[0].startswith(str(PACKAGE)):
            return  # built by a test or a third party, not emitted by the library
        self.emitted.setdefault(code, self.current)
        if registry.lookup(code) is None:
            where = f"{Path(caller[0]).relative_to(ROOT)}:{caller[1]}"
            self.unregistered.append((code, where))

    def missing(self) -> list[str]:
        """Registered codes the library did not emit in this run."""
        return [info.code for info in registry.rules() if info.code not in self.emitted]

    def judge_completeness(self, session: pytest.Session) -> None:
        config = session.config
        reasons = []
        if config.option.keyword:
            reasons.append(f"-k {config.option.keyword!r}")
        if config.option.markexpr:
            reasons.append(f"-m {config.option.markexpr!r}")
        if config.option.deselect or self.deselected:
            reasons.append(f"{self.deselected} deselected")
        ignored = {Path(p).resolve() for p in (config.option.ignore or [])}
        if ignored - SEPARATE_SUITES or config.option.ignore_glob:
            reasons.append("--ignore")
        for arg in config.args:
            path = Path(arg.split("::")[0]).resolve()
            if "::" in arg or not (path == TESTS or path in TESTS.parents):
                reasons.append(f"path {arg}")
        self.partial = ", ".join(reasons) or None


_PLUGIN = RuleCodes()
_KEY = pytest.StashKey[RuleCodes]()


def pytest_configure(config: pytest.Config) -> None:
    _PLUGIN.install()
    config.stash[_KEY] = _PLUGIN


def pytest_unconfigure(config: pytest.Config) -> None:
    _PLUGIN.uninstall()


def plugin_of(config: pytest.Config) -> RuleCodes:
    return config.stash[_KEY]


def pytest_deselected(items: list[pytest.Item]) -> None:
    _PLUGIN.deselected += len(items)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    # The completeness check reads what every other test emitted: it runs last.
    last = [item for item in items if item.name == COMPLETENESS_TEST]
    items[:] = [item for item in items if item.name != COMPLETENESS_TEST] + last
    _PLUGIN.judge_completeness(session)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    _PLUGIN.current = item.nodeid
    _PLUGIN.unregistered.clear()
    try:
        yield
    finally:
        _PLUGIN.current = "(outside a test)"
    found = list(dict.fromkeys(_PLUGIN.unregistered))
    _PLUGIN.unregistered.clear()
    if found:
        pytest.fail("\n".join(f"{where}: {fix_hint(code)}" for code, where in found), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    missing = _PLUGIN.missing()
    terminalreporter.write_line(
        f"rule codes: {len(registry.rules())} registered, {len(_PLUGIN.emitted)} emitted"
        + (f"; not emitted in this run: {', '.join(missing)}" if missing else "")
    )
