"""What the guard adds to a submission: Braket CreateQuantumTask straight vs through
``guard.submit`` (SQLite and memory ledgers), sequentially, against an emulator process."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench._emulator import emulator_process

N = 300
ACTION = '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}}'


async def _measure(env: dict[str, str]) -> dict[str, Any]:
    import botocore.session

    from quotaguard import Budget, BudgetGuard, MemoryLedger, SQLiteLedger, Unit
    from quotaguard.braket import BraketClient, BraketTask

    creds = botocore.session.get_session()
    creds.set_credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    device = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
    # A generous limit: we measure cost, not rejections (each task is 1 shot).
    async with BraketClient("us-east-1", endpoint_url=env["AWS_ENDPOINT_URL_BRAKET"],
                            botocore_session=creds) as braket:  # fmt: skip
        limit = await braket.spending_limit_for(device)
        assert limit is not None
        await braket.update_spending_limit(limit.spending_limit_arn, amount="100000")
        task = BraketTask(device, shots=1)

        # An async send, as an async user writes it: a plain def returning a coroutine would
        # be run on a worker thread (the guard cannot tell it will not block), a thread hop
        # the direct path does not pay.
        async def send() -> Any:
            return await braket.create_quantum_task(device, ACTION, 1, "amazon-braket-bench", "b")

        async def direct() -> float:
            start = time.perf_counter()
            for _ in range(N):
                await send()
            return (time.perf_counter() - start) / N

        async def bound() -> dict[str, str]:
            return {"quantumTaskArn": "arn:aws:braket:us-east-1:1:quantum-task/bench"}

        async def guarded(ledger: Any) -> tuple[float, float]:
            """Per submission: through the guard to the emulator, and the guard alone (the
            same reserve, rules and bind, with a send that returns at once)."""
            async with BudgetGuard(ledger, braket=braket) as guard:
                await guard.add_budget(Budget("team:bench", Unit.USD, Decimal(10**9)))
                await guard.submit(task, send, budgets=["team:bench"])  # warm the state cache
                start = time.perf_counter()
                for _ in range(N):
                    await guard.submit(task, send, budgets=["team:bench"])
                through = (time.perf_counter() - start) / N
                start = time.perf_counter()
                for _ in range(N):
                    await guard.submit(task, bound, budgets=["team:bench"])
                return through, (time.perf_counter() - start) / N

        await direct()  # warm-up
        with TemporaryDirectory() as tmp:
            rounds = []
            for _ in range(3):  # interleaved rounds: drift hits every variant alike
                d = await direct()
                m, m_alone = await guarded(MemoryLedger())
                s, s_alone = await guarded(SQLiteLedger(Path(tmp) / f"{len(rounds)}.sqlite3"))
                rounds.append((d, m, s, m_alone, s_alone))
    d, m, s, m_alone, s_alone = (min(r[i] for r in rounds) for i in range(5))
    return {
        "direct_ms": round(d * 1e3, 3),
        "guarded_memory_ms": round(m * 1e3, 3),
        "guarded_sqlite_ms": round(s * 1e3, 3),
        "overhead_memory_pct": round((m / d - 1) * 100, 1),
        "overhead_sqlite_pct": round((s / d - 1) * 100, 1),
        # The guard's own cost per submission, as a share of the direct round trip: the
        # difference above also carries the round trip's own jitter.
        "guard_alone_memory_ms": round(m_alone * 1e3, 3),
        "guard_alone_sqlite_ms": round(s_alone * 1e3, 3),
        "guard_alone_memory_pct": round(m_alone / d * 100, 1),
        "guard_alone_sqlite_pct": round(s_alone / d * 100, 1),
        "target_pct_max": 5,
    }


def run() -> dict[str, Any]:
    with emulator_process() as env:
        return asyncio.run(_measure(env))


if __name__ == "__main__":
    print(run())
