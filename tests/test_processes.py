"""The worker-process harness fails fast, says why, and leaves no process behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests._support.processes import run_processes


def _double(x: int) -> int:
    return 2 * x


def _die(code: int) -> None:
    os._exit(code)


def _hang(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


def _fail() -> None:
    raise RuntimeError("boom in the worker")


def _unpicklable() -> object:
    return lambda: None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
async def test_results_come_back_in_order() -> None:
    assert await run_processes(_double, [(1,), (2,), (3,)], timeout=60) == [2, 4, 6]


@pytest.mark.slow
@pytest.mark.parametrize("code", [3, 0])
async def test_a_worker_that_exits_without_a_result_fails_the_run(code: int) -> None:
    with pytest.raises(
        AssertionError, match=rf"worker 0 died without a result \(exit code {code}\)"
    ):
        await run_processes(_die, [(code,)], timeout=60)


@pytest.mark.slow
async def test_a_worker_that_raises_fails_with_its_traceback() -> None:
    with pytest.raises(AssertionError, match="boom in the worker"):
        await run_processes(_fail, [()], timeout=60)


@pytest.mark.slow
async def test_an_unpicklable_result_is_reported_not_lost() -> None:
    with pytest.raises(AssertionError, match="result could not be sent"):
        await run_processes(_unpicklable, [()], timeout=60)


@pytest.mark.slow
async def test_a_hung_worker_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # 10 s: time enough for a spawned interpreter to start and write its pid on a busy machine.
    with pytest.raises(AssertionError, match=r"workers \[0\] did not finish within 10"):
        await run_processes(_hang, [(str(pid_file),)], timeout=10)
    assert not _alive(int(pid_file.read_text()))  # killed and reaped, not left running
