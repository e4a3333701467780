"""The docs site's generated rules reference and the check that reads the built site back
(tests/docs/site_check.py; the site itself is built by ``nox -s docs``)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import quotaguard
from quotaguard.engine import registry
from quotaguard.engine.registry import Source, register
from tests.docs.site_check import (
    API_ENTRIES,
    check_api,
    check_rules,
    load_hooks,
    main,
    registered_codes,
)

HEADER = "<tr><th>code</th><th>what it checks</th><th>numbers</th></tr>"


def table(*codes: str) -> str:
    rows = "".join(f"<tr><td><code>{c}</code></td><td>x</td><td>y</td></tr>" for c in codes)
    return f"<html><body><p>intro</p><table><thead>{HEADER}</thead>{rows}</table></body></html>"


def test_the_hook_sees_every_registered_code() -> None:
    """docs/hooks.py imports what it can; the codes it finds are every code the package has,
    optional SDK modules included (a rule defined where an SDK is needed would be lost)."""
    hooked = registered_codes()
    for info in pkgutil.walk_packages(quotaguard.__path__, "quotaguard."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    assert hooked == [info.code for info in registry.rules()]
    assert {"budget.remaining", "ibm.max_execution_time.unset", "braket.price.unknown"} <= set(
        hooked
    )


def test_the_table_has_one_row_per_code_and_escapes_markdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register(
        "zz.test.markdown",
        "a | b and 2**63",
        source=Source.LIVE,
        reference="r",
        action="a",
        numbers="*n*",
    )
    lines = load_hooks().rules_table().splitlines()
    assert lines[0] == "| code | what it checks | what you do | source |"
    assert len(lines) == 2 + len(registry.rules())
    (row,) = [line for line in lines if "zz.test.markdown" in line]
    assert row == "| `zz.test.markdown` | a \\| b and 2\\*\\*63<br>*\\*n\\** | a | live API: r |"


def test_a_complete_rules_table_passes() -> None:
    assert check_rules(table("a.b", "c.d"), ["a.b", "c.d"]) == []


def test_a_missing_or_unknown_code_is_named() -> None:
    assert check_rules(table("a.b", "x.y"), ["a.b", "c.d"]) == [
        "rule c.d is not in the rules table",
        "the rules table shows x.y, which is not registered",
    ]


def test_a_page_without_the_table_fails() -> None:
    other = "<table><tr><th>rule</th><th>meaning</th></tr><tr><td>a.b</td></tr></table>"
    assert check_rules(f"<html>{other}</html>", ["a.b"]) == [
        "no rules table (a table whose header starts 'code | what it checks')"
    ]


def test_api_entries_are_found_by_anchor() -> None:
    html = "".join(f'<h2 id="{name}">{name}</h2>' for name in API_ENTRIES[1:])
    assert check_api(html) == [f"API reference has no entry {API_ENTRIES[0]}"]
    assert check_api(html + f'<div id="{API_ENTRIES[0]}"></div>') == []


def test_the_command_fails_on_a_site_without_the_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path
    (site / "rules").mkdir()
    (site / "api").mkdir()
    (site / "rules" / "index.html").write_text(table("budget.remaining"))
    (site / "api" / "index.html").write_text("<html></html>")
    assert main([str(site)]) == 1
    err = capsys.readouterr().err
    assert "rule ibm.max_execution_time.unset is not in the rules table" in err
    assert "API reference has no entry quotaguard.guard.BudgetGuard" in err
