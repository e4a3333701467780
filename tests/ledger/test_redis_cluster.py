"""The RedisLedger on a real 3-master Redis Cluster (tests/_support/redis_cluster.py).

Every contract test runs on the cluster too (the ``redis-cluster`` backend of
tests/_support/ledger.py). These test what only a cluster has: a namespace in one slot on
one node, scripts lost by a node restart, a charge set across two namespaces (two slots),
and operations while the namespace's slot migrates from one node to another (ASK, TRYAGAIN).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ResponseError

from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetUnavailable, InvalidInput, UnknownBudget
from quotaguard.ledger import Trimmed
from quotaguard.ledger.redis import SCRIPTS, RedisLedger, cluster
from quotaguard.ledger.redis.scripts import sha1
from tests._support.ledger import usd
from tests._support.redis_cluster import LocalCluster
from tests._support.redis_ledger import fresh_namespace

pytestmark = pytest.mark.redis

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def slot_of(namespace: str) -> int:
    return key_slot(f"{{{namespace}}}:leases".encode())


@pytest.fixture
async def cluster_client(redis_cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.url, socket_timeout=5)
    await client.initialize()
    yield client
    await client.aclose()


def ledger_on(client: RedisCluster, namespace: str | None = None) -> RedisLedger:
    return RedisLedger(
        client=client, namespace=namespace or fresh_namespace(), time_source="caller"
    )


async def test_a_multi_budget_reserve_holds_all_or_nothing_in_the_namespace_slot(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    async with ledger_on(cluster_client) as ledger:
        for key, limit in (("a", 10), ("b", 5), ("c", 100)):
            await ledger.put_budget(Budget(key, Unit.USD, Decimal(limit)))
        held = await ledger.reserve([usd("a", 4), usd("b", 5), usd("c", 1)], now=T0)
        refused = await ledger.reserve([usd("a", 1), usd("c", 1), usd("b", "0.01")], now=T0)
        assert held.admitted and held.reservation is not None
        assert not refused.admitted and [v.budget for v in refused.violations] == ["b"]
        reserved = [(await ledger.state(k, now=T0)).reserved for k in "abc"]
        assert reserved == [4, 5, 1]  # the refused set held nothing anywhere
        await ledger.commit(held.reservation.id, now=T0)
        states = [await ledger.state(k, now=T0) for k in "abc"]
        assert [(s.committed, s.reserved) for s in states] == [(4, 0), (5, 0), (1, 0)]
        slot = slot_of(ledger.namespace)
        owner = redis_cluster.owner(slot)
        keys = redis_cluster.keys_in_slot(owner, slot)
        # Every key of the namespace, budgets and reservations alike, on the slot's node.
        assert {k.split(":", 1)[1].split(":")[0] for k in keys} >= {"b", "c", "f", "m", "r"}
        assert all(k.startswith(f"{{{ledger.namespace}}}:") for k in keys)
        others = [i for i in range(3) if i != owner]
        assert all(redis_cluster.keys_in_slot(i, slot) == [] for i in others)


async def test_every_script_runs_on_the_cluster_from_a_ledger_that_knows_nothing(
    cluster_client: RedisCluster,
) -> None:
    # Two ledgers on one namespace: the second knows no reservation's budgets, so every
    # call that finds keys by reading asks for them; none may touch an undeclared key
    # (the check is always on with a RedisCluster client: a script error would fail here).
    ns = fresh_namespace()
    t1 = T0 + timedelta(minutes=1)
    async with ledger_on(cluster_client, ns) as one, ledger_on(cluster_client, ns) as two:
        await one.put_budget(Budget("a", Unit.USD, Decimal(100)))
        await one.put_budget(Budget("b", Unit.USD, Decimal(100)))
        assert [b.key for b in await two.budgets()] == ["a", "b"]
        assert (await two.get_budget("b")).limit == 100
        first = await one.reserve([usd("a", 2), usd("b", 1)], now=T0, idempotency_key="k")
        again = await two.reserve([usd("a", 2), usd("b", 1)], now=T0, idempotency_key="k")
        assert first.reservation is not None and again.replayed
        rid = first.reservation.id
        short = await one.reserve([usd("b", 5)], now=T0, lease=timedelta(seconds=30))
        assert short.reservation is not None
        await two.bind(rid, "job-1", sent_at=T0)
        assert (await two.find_external("job-1")).id == rid  # type: ignore[union-attr]
        await two.renew(rid, lease=timedelta(hours=1), now=T0)
        assert [r.id for r in await two.renew_many([rid], lease=timedelta(hours=1), now=T0)] == [
            rid
        ]
        await two.record_report("a", Decimal(1), at=t1, covers_sent=True)
        await two.mark_in_doubt(short.reservation.id, now=T0)
        assert [r.id for r in await two.in_doubt()] == [short.reservation.id]
        assert {r.id for r in await two.outstanding()} == {rid, short.reservation.id}
        assert await two.expire(now=t1) == 1  # the short lease, in doubt: lapsed
        assert [r.id for r in await two.lapsed()] == [short.reservation.id]
        await two.commit(short.reservation.id, now=t1)  # lapsed work that ran after all
        await two.commit(rid, [usd("a", "1.5"), usd("b", 1)], now=t1)
        assert (await two.get(rid)).state.value == "committed"
        a, b = await two.state("a", now=t1), await two.state("b", now=t1)
        assert (a.committed, a.reserved, b.committed, b.reserved) == (Decimal("1.5"), 0, 6, 0)
        assert await two.committed_between("b", T0, t1 + timedelta(seconds=1)) == 6
        third = await one.reserve([usd("a", 1)], now=t1)
        assert third.reservation is not None
        await two.release(third.reservation.id, now=t1)
        kept = {rid, short.reservation.id, third.reservation.id}
        assert {r.id async for r in two.reservations(page_size=1)} == kept
        keep = timedelta(days=1)
        # b's two commits (a's is after its report, which counts it: kept) and the records
        assert await two.trim(now=t1 + timedelta(days=2), keep=keep) == Trimmed(2, 3)
        assert [r async for r in two.reservations()] == []
        await two.remove_budget("a")
        assert [b.key for b in await one.budgets()] == ["b"]
        assert two._check_keys  # so any undeclared key would have failed its call


def scans(redis_cluster: LocalCluster) -> list[int]:
    """How many SCAN each node has answered (``INFO commandstats``)."""
    out = []
    for index in range(3):
        found = re.search(
            r"cmdstat_scan:calls=(\d+)", redis_cluster.cli(index, "INFO", "commandstats")
        )
        out.append(int(found[1]) if found else 0)
    return out


async def test_the_audit_read_and_the_first_trim_scan_only_the_namespace_slots_node(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    async with ledger_on(cluster_client) as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(100)))
        for i in range(5):
            held = await ledger.reserve([usd("a", 1)], now=T0, idempotency_key=f"k{i}")
            assert held.reservation is not None
            await ledger.commit(held.reservation.id, now=T0)
        owner = redis_cluster.owner(slot_of(ledger.namespace))
        before = scans(redis_cluster)
        assert len([r async for r in ledger.reservations(page_size=2)]) == 5
        ledger.trim_batch = 2  # the first trim lists old records: SCAN in steps of 2
        assert await ledger.trim(now=T0 + timedelta(days=500), keep=timedelta(days=1)) == (
            Trimmed(5, 5)
        )
        after = scans(redis_cluster)
        grew = [b - a for a, b in zip(before, after, strict=True)]
        assert grew[owner] >= 2 and all(grew[i] == 0 for i in range(3) if i != owner)


async def test_a_charge_set_across_two_namespaces_is_two_ledgers_and_not_atomic(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    # Two namespaces on two different nodes.
    first = fresh_namespace()
    second = next(
        ns
        for ns in (fresh_namespace() for _ in range(100))
        if redis_cluster.owner(slot_of(ns)) != redis_cluster.owner(slot_of(first))
    )
    async with ledger_on(cluster_client, first) as one, ledger_on(cluster_client, second) as two:
        await one.put_budget(Budget("team", Unit.USD, Decimal(10)))
        await two.put_budget(Budget("org", Unit.USD, Decimal(1)))
        # One ledger sees one namespace: the other's budget is unknown here, nothing held.
        with pytest.raises(UnknownBudget):
            await one.reserve([usd("team", 2), usd("org", 2)], now=T0)
        assert (await one.state("team", now=T0)).reserved == 0
        # Across namespaces it is one reserve per ledger: the first holds while the second
        # refuses, and letting go of the first is the caller's job.
        team = await one.reserve([usd("team", 2)], now=T0)
        org = await two.reserve([usd("org", 2)], now=T0)
        assert team.admitted and not org.admitted
        assert (await one.state("team", now=T0)).reserved == 2
        assert team.reservation is not None
        await one.release(team.reservation.id, now=T0)
        assert (await one.state("team", now=T0)).reserved == 0
        # And no script can span them: Redis refuses keys of two slots in one call.
        keys = [f"{{{first}}}:b:team", f"{{{second}}}:b:org"]
        node = cluster_client.get_node_from_key(keys[0])
        assert node is not None
        with pytest.raises(ResponseError, match="hash to the same slot"):
            await node.execute_command(
                "EVALSHA", sha1(SCRIPTS["get_budget"]), 2, *keys, "get_budget",
                f"{{{first}}}:", 0, '["team"]', "1",
            )  # fmt: skip


async def test_durability_is_read_on_the_primary_of_the_namespace_slot(
    cluster_client: RedisCluster,
) -> None:
    async with ledger_on(cluster_client) as ledger:
        server = ledger.server_durability
        assert server is not None and server.crash_safe  # the nodes run appendfsync always
        assert (server.role, server.connected_replicas) == ("master", 0)


async def test_a_ledger_that_reads_nothing_at_connect_finds_the_slot_on_its_first_call(
    redis_cluster: LocalCluster,
) -> None:
    client = RedisCluster.from_url(redis_cluster.url, socket_timeout=5)  # no slot map yet
    try:
        ledger = RedisLedger(client=client, namespace=fresh_namespace(), durability="off")
        async with ledger:
            await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
            assert (await ledger.get_budget("a")).limit == 10
    finally:
        await client.aclose()


async def test_replicas_are_refused_on_a_cluster(cluster_client: RedisCluster) -> None:
    with pytest.raises(InvalidInput, match=r"replicas.*RedisCluster"):
        RedisLedger(client=cluster_client, namespace=fresh_namespace(), replicas=1)


async def test_scripts_are_loaded_again_after_the_namespace_node_restarts(
    fresh_cluster: LocalCluster,
) -> None:
    client = RedisCluster.from_url(fresh_cluster.url, socket_timeout=5)
    try:
        async with ledger_on(client) as ledger:
            await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
            first = await ledger.reserve([usd("a", 3)], now=T0)
            owner = fresh_cluster.owner(slot_of(ledger.namespace))
            sha = sha1(SCRIPTS["reserve"])
            assert fresh_cluster.cli(owner, "SCRIPT", "EXISTS", sha).split() == ["1"]
            fresh_cluster.restart(owner)  # AOF keeps the data; scripts are not kept
            assert fresh_cluster.cli(owner, "SCRIPT", "EXISTS", sha).split() == ["0"]
            second = await ledger.reserve([usd("a", 3)], now=T0)  # NOSCRIPT, loaded, sent again
            assert fresh_cluster.cli(owner, "SCRIPT", "EXISTS", sha).split() == ["1"]
            assert first.admitted and second.admitted
            assert (await ledger.state("a", now=T0)).reserved == 6  # the first survived
            assert fresh_cluster.errors(owner).get("NOSCRIPT", 0) >= 1
    finally:
        await client.aclose()


async def test_operations_during_a_slot_migration_follow_ask_and_tryagain(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    async with ledger_on(cluster_client) as ledger:
        ns = ledger.namespace
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(20)))
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        held = await ledger.reserve([usd("a", 3)], now=T0)
        assert held.reservation is not None
        rid = held.reservation.id
        slot = slot_of(ns)
        source = redis_cluster.owner(slot)
        target = (source + 1) % 3
        before = redis_cluster.errors(source).get("ASK", 0)
        tryagain = sum(redis_cluster.errors(i).get("TRYAGAIN", 0) for i in range(3))

        redis_cluster.begin_migration(slot, source, target)
        # Budget a's hash and the reservation's record move first; the rest stays behind.
        redis_cluster.migrate(source, target, [f"{{{ns}}}:b:a", f"{{{ns}}}:r:{rid}"])
        # All of a call's keys moved: the source answers ASK and the target serves it,
        # however many calls ask at once (ASKING rides on each one's own connection).
        for _ in range(4):  # rounds: the later ones find free connections on the target
            got = await asyncio.gather(*(ledger.get(rid) for _ in range(16)))
            assert {r.id for r in got} == {rid}
            assert all(r.charges == held.reservation.charges for r in got)
        assert (await ledger.get_budget("a")).limit == 20
        # All of them still on the source: it serves them there.
        assert (await ledger.get_budget("b")).limit == 10
        assert redis_cluster.errors(source).get("ASK", 0) > before
        # Split between the nodes (or naming a key neither has yet, as a new reservation's
        # record): TRYAGAIN until the migration ends, retried with a bounded backoff.
        calls = [
            asyncio.ensure_future(ledger.state("a", now=T0)),
            asyncio.ensure_future(ledger.reserve([usd("a", 4), usd("b", 1)], now=T0)),
            asyncio.ensure_future(ledger.commit(rid, now=T0)),
            asyncio.ensure_future(ledger.reserve([usd("a", 4)], now=T0)),
        ]
        await asyncio.sleep(0.5)
        assert not any(call.done() for call in calls)  # waiting, not wrong
        assert sum(redis_cluster.errors(i).get("TRYAGAIN", 0) for i in range(3)) > tryagain
        redis_cluster.finish_migration(slot, source, target)
        state, both, committed, second = await asyncio.wait_for(asyncio.gather(*calls), 30)
    async with ledger_on(cluster_client, ns) as ledger:
        assert redis_cluster.owner(slot) == target
        assert both.admitted and second.admitted and committed.state.value == "committed"
        # Exact after the move: 3 committed, two holds of 4 on a, one of 1 on b.
        a, b = await ledger.state("a", now=T0), await ledger.state("b", now=T0)
        assert (a.committed, a.reserved, b.reserved) == (3, 8, 1)
        assert state.reserved + state.committed in (3, 7, 11)  # whichever ran first
        assert redis_cluster.keys_in_slot(source, slot) == []
        # Whatever was due expires on the new owner too.
        assert await ledger.expire(now=T0 + timedelta(days=1)) == 2
        assert (await ledger.state("a", now=T0 + timedelta(days=1))).reserved == 0


async def test_a_migration_stuck_past_the_backoff_fails_the_reserve_and_holds_nothing(
    redis_cluster: LocalCluster, cluster_client: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "TRYAGAIN_PAUSES", (0.01,) * 5)  # ~9 s in production
    async with ledger_on(cluster_client) as ledger:
        ns = ledger.namespace
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
        slot = slot_of(ns)
        source = redis_cluster.owner(slot)
        target = (source + 1) % 3
        redis_cluster.begin_migration(slot, source, target)
        try:
            redis_cluster.migrate(source, target, [f"{{{ns}}}:b:a"])
            with pytest.raises(BudgetUnavailable, match="TryAgainError"):
                await ledger.reserve([usd("a", 4)], now=T0)
        finally:
            redis_cluster.finish_migration(slot, source, target)
        assert (await ledger.state("a", now=T0)).reserved == 0  # TRYAGAIN: it never ran
        assert await ledger.outstanding() == []
        assert (await ledger.reserve([usd("a", 10)], now=T0)).admitted  # all 10 still free


async def test_a_script_touching_an_undeclared_key_fails_while_its_slot_migrates(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    # Why every key is declared: Redis checks only KEYS. An undeclared key that has moved
    # fails the script where it is touched (after any write before it), never up front.
    ns = fresh_namespace()
    here, moved = f"{{{ns}}}:here", f"{{{ns}}}:moved"
    await cluster_client.set(here, "1")
    await cluster_client.set(moved, "2")
    slot = key_slot(here.encode())
    source = redis_cluster.owner(slot)
    target = (source + 1) % 3
    redis_cluster.begin_migration(slot, source, target)
    try:
        redis_cluster.migrate(source, target, [moved])
        script = "redis.call('INCR', KEYS[1]); return redis.call('GET', ARGV[1])"
        with pytest.raises(ResponseError, match="non local key"):
            await cluster_client.eval(script, 1, here, moved)
        assert await cluster_client.get(here) == b"2"  # its write before the failure stands
    finally:
        redis_cluster.finish_migration(slot, source, target)
