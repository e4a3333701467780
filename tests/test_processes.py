"""The worker-process harness fails fast and leaves no process behind."""

from __future__ import annotations

import os
import time

import pytest

from tests.processes import run_processes


def _double(x: int) -> int:
    return 2 * x


def _die(code: int) -> None:
    os._exit(code)


def _hang(seconds: float) -> None:
    time.sleep(seconds)


def _fail() -> None:
    raise RuntimeError("boom in the worker")


@pytest.mark.slow
async def test_results_come_back_in_order() -> None:
    assert await run_processes(_double, [(1,), (2,), (3,)], timeout=60) == [2, 4, 6]


@pytest.mark.slow
async def test_a_worker_that_dies_fails_the_run() -> None:
    with pytest.raises(AssertionError, match=r"died without a result: \[\(0, 3\)\]"):
        await run_processes(_die, [(3,)], timeout=60)


@pytest.mark.slow
async def test_a_worker_that_raises_fails_with_its_traceback() -> None:
    with pytest.raises(AssertionError, match="boom in the worker"):
        await run_processes(_fail, [()], timeout=60)


@pytest.mark.slow
async def test_a_hung_worker_is_killed_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"workers \[0\] did not finish within 3"):
        await run_processes(_hang, [(600,)], timeout=3)
    assert time.monotonic() - started < 60  # killed, not waited for
