"""Every python block of README.md and docs/ runs (tests/docs/examples.py says how they are
found and marked); and the collector itself fails on a broken block and on a bad marker."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from tests._support.subpytest import run_pytest
from tests.docs.examples import (
    ROOT,
    Block,
    MarkupError,
    blocks_in,
    collect,
    compile_block,
    matches_output,
    user_pytest_config,
)

BLOCKS = collect()


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home, state and config directory and working directory: an example that falls
    back to a default path writes there, never to the developer's."""
    home = tmp_path / "home"
    home.mkdir()
    for variable in ("HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(variable, str(home))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_block(block: Block, cwd: Path) -> str:
    """Run one block as a user would run it; its standard output."""
    if block.kind == "excerpt":
        pytest.skip(f"{block.id} is an excerpt: {block.reason}")
    if block.kind == "pytest":
        (cwd / "pyproject.toml").write_text(user_pytest_config())
        (cwd / "test_example.py").write_text(block.source)
        result = run_pytest("test_example.py", cwd=cwd)
        assert result.returncode == 0, f"{block.id}:\n{result.stdout}\n{result.stderr}"
        assert " passed" in result.stdout, result.stdout
        return result.stdout
    out = io.StringIO()
    namespace = {"__name__": "__main__", "__file__": str(cwd / "example.py")}
    environ = dict(os.environ)  # an example may point the SDKs at its emulator
    try:
        with contextlib.redirect_stdout(out):
            exec(compile_block(block), namespace)  # the docs' own code, by design
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return out.getvalue()


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_example_runs(block: Block, user_home: Path) -> None:
    printed = run_block(block, user_home)
    if block.output is not None:
        assert matches_output(block.output, printed), (
            f"{block.id} printed:\n{printed}\nbut the page says:\n{block.output}"
        )


def test_readme_use_it_is_a_runnable_program() -> None:
    readme = [b for b in BLOCKS if b.path.name == "README.md"]
    assert [b.kind for b in readme] == ["run"], "README's python blocks must all run"
    source = readme[0].source
    assert "asyncio.run(main())" in source  # no top-level await
    assert "from quotaguard.testing import Emulator" in source  # runs offline
    assert "TemporaryDirectory" in source  # not the user's shared ledger
    # The watcher settles the jobs (the checked output shows 42 s settled), not watch_once.
    assert "guard.watch(" in source and "watch_once" not in source
    assert readme[0].output is not None and "used 42 left 558" in readme[0].output


def test_a_broken_block_fails(tmp_path: Path, user_home: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```python\nprint('ok')\n```\n\n```python\nprint(undefined_name)\n```\n")
    first, second = blocks_in(page)
    assert (first.line, second.line) == (3, 7)
    assert run_block(first, user_home) == "ok\n"
    with pytest.raises(NameError) as caught:
        run_block(second, user_home)
    # The traceback points into the Markdown file, at the block's own line.
    frames = [(f.filename, f.lineno) for f in _frames(caught.value.__traceback__)]
    assert (str(page), 8) in frames


def test_an_output_block_is_checked(tmp_path: Path, user_home: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nprint('id-42 ok')\n```\n\n<!-- output -->\n```text\nid-… ok\n```\n")
    (block,) = blocks_in(page)
    assert block.output == "id-… ok\n"
    assert matches_output(block.output, run_block(block, user_home))
    assert not matches_output("id-… fine\n", "id-42 ok\n")
    assert not matches_output("one\n", "one\ntwo\n")


def test_a_failing_pytest_block_fails(tmp_path: Path, user_home: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- pytest -->\n```python\nasync def test_x():\n    assert 1 == 2\n```\n")
    (block,) = blocks_in(page)
    assert block.kind == "pytest"
    with pytest.raises(AssertionError, match="1 failed"):
        run_block(block, user_home)


def test_an_excerpt_is_skipped_by_name_with_its_reason(tmp_path: Path, user_home: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- excerpt: a signature -->\n```python\nf(x=1, *, y)\n```\n")
    (block,) = blocks_in(page)
    assert (block.kind, block.reason) == ("excerpt", "a signature")
    with pytest.raises(pytest.skip.Exception, match=r"page\.md:2 is an excerpt: a signature"):
        run_block(block, user_home)


@pytest.mark.parametrize(
    "marker",
    ["<!-- excerpt -->", "<!-- exerpt: typo -->", "<!-- skip: why -->", "<!-- excerpt: -->"],
)
def test_a_bad_marker_is_an_error_not_a_silent_skip(tmp_path: Path, marker: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"{marker}\n```python\nraise SystemExit(1)\n```\n")
    with pytest.raises(MarkupError, match=r"page\.md:1"):
        blocks_in(page)


def test_other_languages_and_indented_fences() -> None:
    text = "```bash\nexit 1\n```\n\n- item\n\n    ```python\n    x = 1\n    ```\n"
    page = ROOT / "tests" / "docs" / "_scratch.md"
    try:
        page.write_text(text)
        (block,) = blocks_in(page)
    finally:
        page.unlink()
    assert block.source == "x = 1\n"


def _frames(tb: object) -> list[object]:
    import traceback

    return list(traceback.extract_tb(tb))  # type: ignore[arg-type]
