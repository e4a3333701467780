"""Worker processes for the tests: spawned, bounded in time, and always reaped."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["run_processes"]


def _report(target: Callable[..., Any], args: tuple[Any, ...], out: Any, index: int) -> None:
    try:
        out.put((index, "ok", target(*args)))
    except BaseException:
        out.put((index, "error", traceback.format_exc()))


async def run_processes(
    target: Callable[..., Any], arg_lists: list[tuple[Any, ...]], *, timeout: float = 180.0
) -> list[Any]:
    """Run ``target(*args)`` in one spawned process per entry; their results, in order.

    Plain processes and one result queue rather than ``multiprocessing.Pool``: a worker that
    dies or hangs fails the test with a message within ``timeout``, where a pool would wait for
    it forever. Every wait here is bounded, and every process is gone when this returns.
    """
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [
        context.Process(target=_report, args=(target, args, out, i), daemon=True)
        for i, args in enumerate(arg_lists)
    ]
    results: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.start()
        while len(results) < len(procs):
            if time.monotonic() > deadline:
                late = [i for i in range(len(procs)) if i not in results]
                raise AssertionError(f"workers {late} did not finish within {timeout}s")
            try:
                index, kind, value = await asyncio.to_thread(out.get, True, 1.0)
            except queue.Empty:
                dead = [
                    (i, p.exitcode)
                    for i, p in enumerate(procs)
                    if i not in results and p.exitcode not in (None, 0)
                ]
                if dead:
                    raise AssertionError(f"workers died without a result: {dead}") from None
                continue
            if kind == "error":
                raise AssertionError(f"worker {index} raised:\n{value}")
            results[index] = value
    finally:
        finished = len(results) == len(procs)
        for proc in procs:
            if finished and proc.is_alive():  # it has reported; let it exit on its own
                await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 10)
        out.close()
        out.cancel_join_thread()  # whatever a killed worker left in the pipe is not ours
    return [results[i] for i in range(len(procs))]
