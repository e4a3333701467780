"""The RedisLedger's operations over keys found by ``SCAN``, and trimming.

A script cannot declare a key it finds by ``SCAN`` (on Redis Cluster, an undeclared key is
one the cluster cannot see moving: lua/base.lua). So ``SCAN`` runs here, from Python, on the
node that holds the namespace's slot (all its keys share one hash tag), and the script that
follows declares the keys it found: ``reservations`` (the audit read) reads their records,
``list_ended`` puts the ended ones in the ``ended`` index. ``trim`` finds the rest of what it
drops by reading (each budget's keys, the ``ended`` ids) and asks for them (``need``).

An audit page is therefore not one atomic snapshot: the records of one page are read in one
script, but a record may change or go between the ``SCAN`` and the read (one trimmed since
is left out), as it could between two pages before. ``SCAN`` may give a key twice
(``_pages_repeat``: the audit read drops the repeat). On a cluster a cursor is the node's:
should the slot move to another node between two pages, the next page's cursor means
nothing there (a record may be skipped or given twice); read again after a migration.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from quotaguard.ledger.audit import Page
from quotaguard.ledger.encoding import epoch_us
from quotaguard.ledger.redis.codec import month_arg, reservation_from, text
from quotaguard.ledger.redis.store import RedisStore
from quotaguard.ledger.retention import Trimmed

__all__ = ["ScannedReads"]


class ScannedReads(RedisStore):
    """``SCAN`` from Python, then a script that declares what it found; and ``trim``."""

    _ended_listed = False  # see _list_ended

    # SCAN (the audit read's pages) may give a key twice when the keyspace rehashes.
    _pages_repeat = True

    async def _scan_records(self, cursor: int, count: int) -> tuple[int, list[str]]:
        """One ``SCAN`` step over the namespace's ``r:<id>`` keys, on the slot's node: the
        next cursor (0: the last step) and the ids found."""
        if not self._connected:
            await self.connect()
        match, head = f"{self._prefix}r:*", len(self._prefix) + 2
        try:
            async with asyncio.timeout(self._deadline):
                if isinstance(self._client, RedisCluster):
                    # The cluster client answers ({node: cursor}, keys), of one node here.
                    route = await self._route()
                    reply: Any = await self._client.scan(cursor, match=match, count=count, **route)
                    (cursor,) = reply[0].values()
                    found = reply[1]
                else:
                    cursor, found = await self._client.scan(cursor, match=match, count=count)
        except TimeoutError:
            raise self._silent(self._deadline) from None
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        return int(cursor), [text(key)[head:] for key in found]

    async def _reservation_page(self, after: str | None, limit: int) -> Page:
        cursor, rids = await self._scan_records(int(after or 0), limit)
        found = []
        if rids:
            reply = await self._call("reservations", rids, keys=self._record_keys(rids))
            found = [reservation_from(flat) for flat in reply[1:]]
        return found, None if cursor == 0 else str(cursor)

    def _record_keys(self, rids: list[str]) -> tuple[str, ...]:
        return tuple(self._record_key(rid) for rid in rids)

    async def _trim(self, now: datetime, cut: datetime, limit: int) -> tuple[Trimmed, bool]:
        if not self._ended_listed:
            await self._list_ended(limit)
        at, until = epoch_us(now), epoch_us(cut)
        month = self._month_of(now, at)
        reply = await self._call(
            "trim", at, self._clock_arg(now), until, month, month_arg(cut)[2][0], limit, now=now
        )
        return Trimmed(int(reply[1]), int(reply[2])), reply[3] == 1

    async def _list_ended(self, batch: int) -> None:
        """Once per namespace: list the records that ended before the ``ended`` index
        existed (quotaguard before trimming), so that trim finds them too."""
        if (await self._call("list_ended", [], 0))[2] == 1:
            self._ended_listed = True
            return
        cursor, rids = await self._scan_records(0, batch)
        while cursor != 0:
            if rids:
                await self._call("list_ended", rids, 0, keys=self._record_keys(rids))
            cursor, rids = await self._scan_records(cursor, batch)
        await self._call("list_ended", rids, 1, keys=self._record_keys(rids))
        self._ended_listed = True
