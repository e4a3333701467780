"""Worker processes for the tests: spawned, bounded in time, and always reaped."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = ["run_processes"]


def _report(target: Callable[..., Any], args: tuple[Any, ...], conn: Connection) -> None:
    try:
        try:
            outcome: tuple[str, Any] = ("ok", target(*args))
        except BaseException:
            outcome = ("error", traceback.format_exc())
        try:
            conn.send(outcome)
        except Exception:  # an unpicklable result: say so rather than send nothing
            conn.send(("error", f"result could not be sent:\n{traceback.format_exc()}"))
    finally:
        conn.close()


async def run_processes(
    target: Callable[..., Any], arg_lists: list[tuple[Any, ...]], *, timeout: float = 180.0
) -> list[Any]:
    """Run ``target(*args)`` in one spawned process per entry; their results, in order.

    Each worker writes its one result down a pipe of its own, whose write end the parent closes:
    a worker that dies (before or while writing) reads as end-of-file at once, and the run fails
    with its exit code. ``multiprocessing.Pool`` would instead wait for it forever. A worker still
    running at ``timeout`` is killed. Every wait is bounded; no process outlives the call.
    """
    context = multiprocessing.get_context("spawn")
    pipes = [context.Pipe(duplex=False) for _ in arg_lists]
    procs = [
        context.Process(target=_report, args=(target, args, writer), daemon=True)
        for args, (_, writer) in zip(arg_lists, pipes, strict=True)
    ]
    pending: dict[Any, int] = {reader: i for i, (reader, _) in enumerate(pipes)}
    results: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        for proc, (_, writer) in zip(procs, pipes, strict=True):
            proc.start()
            writer.close()  # the worker holds the only write end now
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                late = sorted(pending.values())
                raise AssertionError(f"workers {late} did not finish within {timeout}s")
            ready = await asyncio.to_thread(wait, list(pending), min(left, 1.0))
            for reader in ready:
                index = pending.pop(reader)
                try:
                    kind, value = await asyncio.to_thread(reader.recv)
                except (EOFError, OSError):  # OSError: it died part-way through writing
                    await asyncio.to_thread(procs[index].join, 5)
                    raise AssertionError(
                        f"worker {index} died without a result (exit code {procs[index].exitcode})"
                    ) from None
                if kind == "error":
                    raise AssertionError(f"worker {index} raised:\n{value}")
                results[index] = value
    finally:
        for proc in procs:
            if not pending and proc.is_alive():  # all reported; let them exit on their own
                await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 10)
        for reader, writer in pipes:
            reader.close()
            writer.close()  # a no-op unless a start failed before it was handed over
    return [results[i] for i in range(len(procs))]
