"""Braket client throughput: our BraketClient vs boto3 in threads, at concurrency 50.

Both call SearchSpendingLimits against the in-process emulator (10 limits seeded, one page).
``python -m bench`` calls ``run()``; ``python bench/braket_client.py`` prints the numbers.
Optionally compares aiobotocore when it is importable (it pins botocore; see DESIGN.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CONCURRENCY = 50
SECONDS = 3.0


async def _ours(url: str) -> float:
    import botocore.session

    from quotaguard.braket import BraketClient

    session = botocore.session.get_session()
    session.set_credentials("AKIDEXAMPLE", "bench-secret")
    done = 0
    async with BraketClient("us-east-1", endpoint_url=url, botocore_session=session) as client:
        stop = time.perf_counter() + SECONDS

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                async for _ in client.search_spending_limits():
                    pass
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - start)


async def _boto3(url: str) -> float:
    import boto3
    import botocore.config

    config = botocore.config.Config(max_pool_connections=CONCURRENCY)
    client = boto3.client("braket", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="bench-secret",
                          config=config)  # fmt: skip
    stop = time.perf_counter() + SECONDS
    counts = [0] * CONCURRENCY

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            client.search_spending_limits()
            counts[i] += 1

    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, worker, i) for i in range(CONCURRENCY)))
    return sum(counts) / (time.perf_counter() - start)


async def _aiobotocore(url: str) -> float | None:
    try:
        from aiobotocore.session import get_session
    except ImportError:
        return None
    done = 0
    async with get_session().create_client(
        "braket", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="bench-secret",
    ) as client:  # fmt: skip
        stop = time.perf_counter() + SECONDS

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await client.search_spending_limits()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - start)


async def _main(external_url: str | None) -> dict[str, Any]:
    from quotaguard.testing import Emulator

    async with Emulator() as emu:
        for i in range(10):
            emu.braket.add_spending_limit(f"arn:aws:braket:us-east-1::device/qpu/acme/Q{i}", "10")
        url = external_url or emu.url
        result: dict[str, Any] = {"concurrency": CONCURRENCY, "seconds": SECONDS}
        result["quotaguard_calls_per_s"] = round(await _ours(url))
        result["boto3_threads_calls_per_s"] = round(await _boto3(url))
        aiob = await _aiobotocore(url)
        result["aiobotocore_calls_per_s"] = None if aiob is None else round(aiob)
        result["ratio_vs_boto3"] = round(
            result["quotaguard_calls_per_s"] / result["boto3_threads_calls_per_s"], 2
        )
        # The target (DESIGN "Clients"): at least 3x aiobotocore at concurrency 50.
        result["ratio_vs_aiobotocore"] = (
            None if aiob is None else round(result["quotaguard_calls_per_s"] / aiob, 2)
        )
        result["target_ratio_vs_aiobotocore_min"] = 3
        return result


def run() -> dict[str, Any]:
    """Calls/s for each client (the emulator shares this process and its loop)."""
    return asyncio.run(_main(os.environ.get("BENCH_BRAKET_URL")))


if __name__ == "__main__":
    print(run())
