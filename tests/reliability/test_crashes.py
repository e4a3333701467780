"""Crashes: a worker SIGKILLed while holding budget on SQLite; redis-server killed mid-run.

SQLite: the file stays sound (``integrity_check``), the dead worker's holds count until their
lease and not a microsecond after, and its committed spend is untouched. Redis with AOF
(``appendfsync always``): SIGKILL the server while workers reserve, start it again on the same
port; every reservation a worker got an id for is still held, exactly once. PostgreSQL: the
same two, a worker SIGKILLed and the server stopped with ``pg_ctl stop -m immediate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import signal
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard.engine import Budget, Charge, ReservationState, Unit
from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger import SQLiteLedger
from tests._support.ledger import drop_schema
from tests._support.postgres_server import PostgresServer
from tests._support.redis_server import RedisServer
from tests._support.times import T0
from tests._support.workers import KEY, RestartGate, crash_worker, open_ledger, restart_worker

LEASE_S = 300


async def _sigkill_worker_mid_stream(
    *worker_args: object,
) -> tuple[str, dict[str, Decimal], dict[str, Decimal]]:
    """Start :func:`crash_worker`, SIGKILL it after 40 reported holds, while it is writing.

    Returns what it had committed, the holds it reported before the kill, and those plus
    any still in the queue (made and reported, but not yet read when it died).
    """
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    path, lease, *rest = worker_args
    proc = context.Process(target=crash_worker, args=(path, lease, out, *rest))
    proc.start()
    held: dict[str, Decimal] = {}
    try:
        kind, committed = await asyncio.to_thread(out.get, True, 60)
        assert kind == "committed"
        while len(held) < 40:
            _, rid, size = await asyncio.to_thread(out.get, True, 60)
            held[rid] = Decimal(size)
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        await asyncio.to_thread(proc.join, 30)
        if proc.is_alive():  # pragma: no cover - only if SIGKILL did not land
            proc.kill()
    assert proc.exitcode == -signal.SIGKILL
    with_late = dict(held)
    while True:
        try:
            _, rid, size = out.get_nowait()
        except queue.Empty:
            break
        with_late[rid] = Decimal(size)
    out.close()
    out.join_thread()
    return committed, held, with_late


@pytest.mark.slow
async def test_sigkilled_worker_holds_expire_at_their_lease(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.sqlite3")
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(Budget(KEY, Unit.USD, Decimal(100_000)))
    committed, held, with_late = await _sigkill_worker_mid_stream(path, LEASE_S)

    async with SQLiteLedger(path, time_source="caller") as ledger:
        assert await ledger.integrity_check() == "ok"
        outstanding = {r.id: r for r in await ledger.outstanding()}
        # Every hold the worker reported survived the kill. It may have made more that it
        # never reported: the queue's feeder thread died with it, unflushed.
        assert set(with_late) <= set(outstanding)
        for r in outstanding.values():
            assert r.lease_expires_at == T0 + timedelta(seconds=LEASE_S)
        just_before = T0 + timedelta(seconds=LEASE_S) - timedelta(microseconds=1)
        before = await ledger.state(KEY, now=just_before)
        assert before.committed == Decimal(committed)
        assert before.reserved == sum(r.amount_for(KEY) for r in outstanding.values())
        assert before.reserved >= sum(held.values())
        at_lease = await ledger.state(KEY, now=T0 + timedelta(seconds=LEASE_S))
        assert (at_lease.reserved, at_lease.outstanding) == (0, 0)
        assert at_lease.committed == Decimal(committed)  # committed spend untouched
        for rid in held:
            assert (await ledger.get(rid)).state is ReservationState.EXPIRED
        # The file is still a working ledger for the survivors.
        after = T0 + timedelta(seconds=LEASE_S)
        decision = await ledger.reserve([Charge(KEY, Decimal(1), Unit.USD)], now=after)
        assert decision.admitted
        assert await ledger.integrity_check() == "ok"


@pytest.mark.slow
@pytest.mark.redis
async def test_redis_restart_mid_run_forgets_no_admitted_work(tmp_path: Path) -> None:
    namespace = f"aof-{uuid.uuid4().hex[:8]}"
    with RedisServer(appendonly=True, dir=tmp_path) as server:
        async with open_ledger("redis", server.url, namespace) as ledger:
            await ledger.put_budget(Budget(KEY, Unit.USD, Decimal(1_000_000)))
            # Workers run in threads (each its own loop and ledger). Each stops a quarter of
            # the way in; two are let go just before the kill (their requests are in flight
            # when it lands), two only after it (they are certainly mid-run).
            gates = [RestartGate() for _ in range(4)]
            workers = [
                asyncio.ensure_future(
                    asyncio.to_thread(restart_worker, server.url, namespace, 400, seed, gate)
                )
                for seed, gate in enumerate(gates)
            ]
            for gate in gates:
                assert await asyncio.to_thread(gate.reached.wait, 60), "a worker never started"
            before_kill = len(await ledger.outstanding())
            gates[0].go.set()
            gates[1].go.set()
            await asyncio.to_thread(server.kill)  # SIGKILL: only the AOF survives
            assert not any(w.done() for w in workers[2:]), "the restart must land mid-run"
            gates[2].go.set()
            gates[3].go.set()
            await asyncio.to_thread(server.start)
            results = await asyncio.gather(*workers)
            got = [entry for result in results for entry in result]
            assert len(got) == 1_600
            assert 0 < before_kill < 1_600
            # This ledger's pooled connection died with the server: the contract is one
            # BudgetUnavailable, then a retry that works.
            with contextlib.suppress(BudgetUnavailable):
                await ledger.outstanding()
            outstanding = {r.id: r for r in await ledger.outstanding()}
            ids = {rid for _, rid, _ in got}
            assert len(ids) == len(got)  # a retried key never got a second reservation
            assert set(outstanding) == ids  # no admitted work forgotten, none extra
            for key, rid, size in got:
                assert outstanding[rid].idempotency_key == key
                assert outstanding[rid].amount_for(KEY) == Decimal(size)
            state = await ledger.state(KEY, now=T0)
            assert state.reserved == sum(Decimal(size) for _, _, size in got)
            assert state.outstanding == 1_600
    print(f"\nredis restart: killed with {before_kill} held, 1600 ids all kept")


@pytest.mark.slow
@pytest.mark.postgres
async def test_sigkilled_postgres_worker_holds_count_until_their_lease(
    postgres_server: PostgresServer,
) -> None:
    schema = f"crash_{uuid.uuid4().hex[:8]}"
    try:
        async with open_ledger("postgres", postgres_server.dsn, schema) as ledger:
            await ledger.put_budget(Budget(KEY, Unit.USD, Decimal(100_000)))
            committed, held, _ = await _sigkill_worker_mid_stream(
                postgres_server.dsn, LEASE_S, "postgres", schema
            )
            outstanding = {r.id: r for r in await ledger.outstanding()}
            assert set(held) <= set(outstanding)  # every acknowledged hold survived
            lease_end = T0 + timedelta(seconds=LEASE_S)
            before = await ledger.state(KEY, now=lease_end - timedelta(microseconds=1))
            assert before.committed == Decimal(committed)
            assert before.reserved == sum(r.amount_for(KEY) for r in outstanding.values())
            at_lease = await ledger.state(KEY, now=lease_end)
            assert (at_lease.reserved, at_lease.outstanding) == (0, 0)
            assert at_lease.committed == Decimal(committed)
            for rid in held:
                assert (await ledger.get(rid)).state is ReservationState.EXPIRED
    finally:
        await drop_schema(postgres_server.dsn, schema)


@pytest.mark.slow
@pytest.mark.postgres
async def test_postgres_crash_mid_run_forgets_no_admitted_work() -> None:
    # A cluster of its own, with fsync on, stopped with "pg_ctl stop -m immediate" (every
    # server process killed at once, no checkpoint) while four workers reserve, and started
    # again: every reservation a worker got an id for is still held, exactly once.
    with PostgresServer(durable=True) as server:
        schema = "crash"
        async with open_ledger("postgres", server.dsn, schema) as ledger:
            await ledger.put_budget(Budget(KEY, Unit.USD, Decimal(1_000_000)))
            gates = [RestartGate() for _ in range(4)]
            workers = [
                asyncio.ensure_future(
                    asyncio.to_thread(
                        restart_worker, server.dsn, schema, 200, seed, gate, "postgres"
                    )
                )
                for seed, gate in enumerate(gates)
            ]
            for gate in gates:
                assert await asyncio.to_thread(gate.reached.wait, 60), "a worker never started"
            before_crash = len(await ledger.outstanding())
            gates[0].go.set()
            gates[1].go.set()
            await asyncio.to_thread(server.stop, "immediate")
            assert not any(w.done() for w in workers[2:]), "the crash must land mid-run"
            gates[2].go.set()
            gates[3].go.set()
            await asyncio.to_thread(server.start)
            results = await asyncio.gather(*workers)
            got = [entry for result in results for entry in result]
            assert len(got) == 800
            assert 0 < before_crash < 800
            with contextlib.suppress(BudgetUnavailable):  # its pooled connection died
                await ledger.outstanding()
            outstanding = {r.id: r for r in await ledger.outstanding()}
            ids = {rid for _, rid, _ in got}
            assert len(ids) == len(got)  # a retried key never got a second reservation
            assert set(outstanding) == ids  # no admitted work forgotten, none extra
            for key, rid, size in got:
                assert outstanding[rid].idempotency_key == key
                assert outstanding[rid].amount_for(KEY) == Decimal(size)
            state = await ledger.state(KEY, now=T0)
            assert state.reserved == sum(Decimal(size) for _, _, size in got)
            assert state.outstanding == 800
    print(f"\npostgres crash: stopped -m immediate with {before_crash} held, 800 ids all kept")
