"""The code examples of README.md and docs/: found in the Markdown, run as programs.

Every fenced block whose language is ``python`` (or ``py``) is a complete program a user can
paste, and the suite runs it. A block that is only an excerpt says so on the line right above
its fence, with a reason, in an HTML comment that the rendered page does not show::

    <!-- excerpt: a signature, see the API reference -->
    ```python
    BudgetGuard(ledger=None, *, ibm=None, ...)
    ```

and is reported skipped, naming the block (``docs/guard.md:24``) and that reason. A ``text``
block marked ``<!-- output -->`` is what the python block before it prints: the run must print
exactly that, where ``…`` in a line stands for any text (an id, a timestamp). A block marked
``<!-- pytest -->`` is a test module: it is written to a file and run by pytest, under the
configuration the Testing page gives (it must pass, and collect at least one test).
Any other comment right above a python fence is an error, as is an excerpt without a reason, so
a typo cannot turn a block off silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

__all__ = [
    "Block",
    "MarkupError",
    "blocks_in",
    "collect",
    "compile_block",
    "matches_output",
    "user_pytest_config",
]

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
MARK = re.compile(r"^\s*<!--\s*(?P<kind>[a-z-]+)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")
PYTHON = frozenset({"python", "py", "python3"})
KINDS = frozenset({"excerpt", "pytest"})
OUTPUT = re.compile(r"^\s*<!--\s*output\s*-->\s*$")


class MarkupError(ValueError):
    """A marker the collector does not understand (it never guesses)."""


@attrs.frozen
class Block:
    path: Path
    #: 1-based line of the opening fence.
    line: int
    source: str
    #: "run", "excerpt" or "pytest".
    kind: str = "run"
    reason: str = ""
    #: What the block prints (from the ``<!-- output -->`` block after it), if the page says.
    output: str | None = None

    @property
    def id(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path.as_posix()}:{self.line}"


def blocks_in(path: Path) -> list[Block]:
    """The python blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        if opening["info"].lower() in PYTHON:
            kind, reason = _mark(path, i, lines)
            found.append(Block(path, i + 1, body, kind, reason))
        elif i > 0 and OUTPUT.match(lines[i - 1]):
            if not found or found[-1].output is not None:
                raise MarkupError(f"{path}:{i}: an output block follows no python block")
            found[-1] = attrs.evolve(found[-1], output=body)
        i = end + 1
    return found


def user_pytest_config(page: Path = ROOT / "docs" / "testing.md") -> str:
    """The ``[tool.pytest.ini_options]`` that the Testing page tells users to write first: the
    ``<!-- pytest -->`` blocks run under exactly that."""
    text = page.read_text(encoding="utf-8")
    found = re.search(r"```toml\n(\[tool\.pytest\.ini_options\]\n.*?)```", text, re.DOTALL)
    if found is None:
        raise MarkupError(f"{page}: no toml block with [tool.pytest.ini_options]")
    return found[1]


def matches_output(expected: str, printed: str) -> bool:
    """Whether ``printed`` is ``expected`` line for line, ``…`` matching any text."""
    want, got = expected.rstrip("\n").split("\n"), printed.rstrip("\n").split("\n")
    if len(want) != len(got):
        return False
    for pattern, line in zip(want, got, strict=True):
        regex = ".*".join(re.escape(part) for part in pattern.split("…"))
        if re.fullmatch(regex, line) is None:
            return False
    return True


def _mark(path: Path, i: int, lines: list[str]) -> tuple[str, str]:
    above = lines[i - 1] if i > 0 else ""
    if "<!--" not in above:
        return "run", ""
    mark = MARK.match(above)
    where = f"{path}:{i}"
    if mark is None or mark["kind"] not in KINDS:
        raise MarkupError(f"{where}: unknown marker {above.strip()!r}; use one of {sorted(KINDS)}")
    if mark["kind"] == "excerpt" and not mark["reason"]:
        raise MarkupError(f"{where}: an excerpt says why: <!-- excerpt: <reason> -->")
    return mark["kind"], mark["reason"] or ""


def collect(root: Path = ROOT) -> list[Block]:
    """Every python block of README.md and docs/**/*.md."""
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [block for path in files for block in blocks_in(path)]


def compile_block(block: Block) -> object:
    """The block's code object; line numbers in tracebacks are the Markdown file's."""
    padded = "\n" * block.line + block.source
    return compile(padded, str(block.path), "exec")
