"""Read the built site back: the rules reference shows a table with every registered rule
code, and the API reference has its entries. ``nox -s docs`` runs it on the files in ``site/``;
``nox -s docs_browser`` on the DOM headless Chromium renders (``--browser``).

    python -m tests.docs.site_check site [--browser]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

__all__ = [
    "API_ENTRIES",
    "Page",
    "check_api",
    "check_rules",
    "dump_dom",
    "load_hooks",
    "registered_codes",
]

ROOT = Path(__file__).resolve().parents[2]
#: Anchors mkdocstrings writes for these objects; each must be in the API page.
API_ENTRIES = (
    "quotaguard.guard.BudgetGuard",
    "quotaguard.guard.BudgetGuard.submit",
    "quotaguard.guard.BudgetGuard.watch",
    "quotaguard.engine.model.Violation",
    "quotaguard.engine.registry.register",
    "quotaguard.ibm.IBMJob",
    "quotaguard.braket.BraketTask",
    "quotaguard.errors.BudgetExceeded",
    "quotaguard.testing.Emulator",
    "quotaguard.guard.telemetry.Telemetry",
    "quotaguard.ledger.redis.RedisLedger",
    "quotaguard.ledger.postgres.PostgresLedger",
    "quotaguard.ledger.retention.Trimmed",
)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class Page(HTMLParser):
    """The tables (rows of cell texts) and element ids of one HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.ids: set[str] = set()
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables:
            if self.tables[-1]:
                self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def load_hooks() -> Any:
    """docs/hooks.py, the mkdocs hook that writes the rules reference."""
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def registered_codes() -> list[str]:
    """Every code the rules page must show, read the way docs/hooks.py reads them."""
    return [rule.code for rule in load_hooks().registered_rules()]


def check_rules(html: str, codes: list[str]) -> list[str]:
    """What is wrong with the rules page (nothing: an empty list)."""
    for table in Page(html).tables:
        if not table or [c.lower() for c in table[0][:2]] != ["code", "what it checks"]:
            continue
        shown = [row[0] for row in table[1:] if row]
        problems = [f"rule {code} is not in the rules table" for code in codes if code not in shown]
        problems += [
            f"the rules table shows {c}, which is not registered" for c in shown if c not in codes
        ]
        if not codes:
            problems.append("no rule codes are registered")
        return problems
    return ["no rules table (a table whose header starts 'code | what it checks')"]


def check_api(html: str, entries: tuple[str, ...] = API_ENTRIES) -> list[str]:
    ids = Page(html).ids
    return [f"API reference has no entry {name}" for name in entries if name not in ids]


def dump_dom(page: Path, timeout: float = 120.0) -> str:
    """The DOM of ``page`` after headless Chromium has rendered it (scripts run)."""
    browser = next((found for b in BROWSERS if (found := shutil.which(b))), None)
    if browser is None:
        raise SystemExit(f"no Chromium on PATH (looked for {', '.join(BROWSERS)})")
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0 or "<html" not in result.stdout.lower():
        raise SystemExit(f"{browser} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("site", type=Path)
    parser.add_argument("--browser", action="store_true", help="render with headless Chromium")
    args = parser.parse_args(argv)
    rules_page = (args.site / "rules" / "index.html").resolve()
    codes = registered_codes()
    if args.browser:
        problems = check_rules(dump_dom(rules_page), codes)
        what = f"Chromium rendered {rules_page}"
    else:
        problems = check_rules(rules_page.read_text(encoding="utf-8"), codes)
        problems += check_api((args.site / "api" / "index.html").read_text(encoding="utf-8"))
        what = f"read {args.site}"
    for problem in problems:
        print(f"site check: {problem}", file=sys.stderr)
    if not problems:
        print(f"site check: {what}: the rules table shows all {len(codes)} codes")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
