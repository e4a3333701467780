"""mkdocs hook: the rules reference (docs/rules.md) is written from the rule registry.

``<!-- rules-table -->`` in a page becomes a table of every registered code: code, what it
checks (with its numbers), what the user does about it, and its source. Every module of quotaguard
is imported first, so every provider module has registered its codes; a module whose optional
dependency is not installed (redis, the provider SDKs) is skipped: rule codes live in the
provider rule modules, which need none (tests/docs/test_site.py holds the hook to that).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

MARKER = "<!-- rules-table -->"


def registered_rules() -> tuple[Any, ...]:
    import quotaguard
    from quotaguard.engine import registry
    from quotaguard.errors import MissingDependency

    for info in pkgutil.walk_packages(quotaguard.__path__, "quotaguard.", onerror=lambda _: None):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except MissingDependency:
            continue  # an optional extra this environment has not installed (redis, postgres)
        except ModuleNotFoundError as exc:
            if (exc.name or "").startswith("quotaguard"):
                raise
    return registry.rules()


def _cell(text: str) -> str:
    # The registry holds plain text: nothing in it may turn into Markdown emphasis or a column.
    return text.replace("*", "\\*").replace("|", "\\|").replace("\n", " ")


def rules_table() -> str:
    rows = ["| code | what it checks | what you do | source |", "|---|---|---|---|"]
    for rule in registered_rules():
        checks = _cell(rule.summary) + (f"<br>*{_cell(rule.numbers)}*" if rule.numbers else "")
        source = ", ".join(s.value for s in rule.sources) + f": {rule.reference}"
        rows.append(f"| `{rule.code}` | {checks} | {_cell(rule.action)} | {_cell(source)} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return markdown.replace(MARKER, rules_table()) if MARKER in markdown else markdown
