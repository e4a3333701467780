"""What the Redis ledger tests share: fresh namespaces and a raw view of one."""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as aioredis

__all__ = ["fresh_namespace", "raw_snapshot"]


def fresh_namespace() -> str:
    return f"rt-{uuid.uuid4().hex[:12]}"


async def raw_snapshot(client: aioredis.Redis, namespace: str) -> dict[bytes, Any]:
    """Every key of a namespace with its full content: what 'nothing changed' compares."""
    out: dict[bytes, Any] = {}
    async for key in client.scan_iter(match=f"{{{namespace}}}:*"):
        kind = (await client.type(key)).decode()
        if kind == "hash":
            out[key] = await client.hgetall(key)
        elif kind == "zset":
            out[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[key] = await client.smembers(key)
        else:
            out[key] = (kind, await client.dump(key))
    return out
