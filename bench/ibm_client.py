"""IBM usage reads: our IBMRuntimeClient (async, concurrency 50) vs qiskit-ibm-runtime's
``QiskitRuntimeService.usage()`` (sync, in 50 threads), against the same emulator process."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench._emulator import emulator_process

CONCURRENCY = 50
SECONDS = 3.0


async def _ours(env: dict[str, str]) -> float:
    from quotaguard.ibm import IBMRuntimeClient

    done = 0
    async with IBMRuntimeClient(env["IBMCLOUD_API_KEY"], env["QUOTAGUARD_IBM_SERVICE_CRN"],
                                base_url=env["QUOTAGUARD_IBM_URL"],
                                iam_url=env["IAM_URL"]) as client:  # fmt: skip
        await client.get_usage()  # warm the token, as a long-lived client would be
        stop = time.perf_counter() + SECONDS

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await client.get_usage()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - start)


def _qiskit(env: dict[str, str]) -> float:
    from qiskit_ibm_runtime import QiskitRuntimeService

    os.environ["IAM_URL"] = env["IAM_URL"]
    os.environ["QISKIT_FUNCTIONS_EXPERIMENTAL"] = "1"
    url = env["QUOTAGUARD_IBM_URL"].replace("/api", "/experimental/api/v1")
    service = QiskitRuntimeService(channel="ibm_quantum_platform", token=env["IBMCLOUD_API_KEY"],
                                   instance=env["QUOTAGUARD_IBM_SERVICE_CRN"], url=url)  # fmt: skip
    service.usage()
    stop = time.perf_counter() + SECONDS
    counts = [0] * CONCURRENCY

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            service.usage()
            counts[i] += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(worker, range(CONCURRENCY)))
    return sum(counts) / (time.perf_counter() - start)


def run() -> dict[str, Any]:
    with emulator_process() as env:
        ours = asyncio.run(_ours(env))
        try:
            theirs: float | None = _qiskit(env)
            error = None
        except Exception as exc:  # report, do not hide: the ratio is then unknown
            theirs, error = None, f"{type(exc).__name__}: {exc}"
    result: dict[str, Any] = {"ours_calls_per_s": round(ours), "concurrency": CONCURRENCY}
    if theirs:
        result |= {"qiskit_usage_calls_per_s": round(theirs), "ratio": round(ours / theirs, 1)}
    else:
        result["qiskit_error"] = error
    result["target_ratio_min"] = 5
    return result


if __name__ == "__main__":
    print(run())
