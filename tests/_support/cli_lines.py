"""What the command prints on stderr when it fails: one line, in the documented form."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("quotaguard: "), err
    assert "Traceback" not in err
    return lines[0]
