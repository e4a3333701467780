"""What a Redis server keeps after a crash, read at connect, and the ledger's policy on it.

``durability``: ``"ack"`` (the default) warns once, loudly, when an acknowledged write can be
lost on a crash (AOF off, or ``appendfsync`` other than ``always``); ``"strict"`` refuses to
start then (and when the settings cannot be read); ``"off"`` reads nothing. ``replicas=N``
has every write script followed by ``WAIT N`` on the same connection (see
:class:`~quotaguard.ledger.redis.store.RedisStore`). Managed services often rename or
disable ``CONFIG``: the ledger says so once and treats durability as unknown.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import attrs
from redis.exceptions import ResponseError

from quotaguard.errors import BudgetUnavailable, InvalidInput

__all__ = [
    "DURABILITY",
    "WRITES",
    "DurabilityName",
    "ServerDurability",
    "apply_policy",
    "check_policy",
    "read_server",
]

log = logging.getLogger("quotaguard.ledger")

DurabilityName = Literal["ack", "strict", "off"]
DURABILITY: tuple[str, ...] = ("ack", "strict", "off")

#: The operations whose scripts write and wait for replicas. Not ``state``: it only sweeps
#: due leases, and a sweep a failover forgets is swept again. Not ``cancel``: it undoes a
#: reserve nobody was told of; if a failover forgets the undo, that hold lapses at its lease.
WRITES = frozenset(
    {
        "put_budget",
        "remove_budget",
        "reserve",
        "commit",
        "release",
        "renew",
        "renew_many",
        "expire",
        "bind",
        "mark_in_doubt",
        "record_report",
        "trim",
        "list_ended",
    }
)


_FIX = "set appendonly yes and appendfsync always (CONFIG SET, and in redis.conf)"


def check_policy(durability: object, replicas: object, wait_timeout: object) -> None:
    """Refuse bad settings with :class:`InvalidInput` before anything connects."""
    if not isinstance(durability, str) or durability not in DURABILITY:
        raise InvalidInput("durability", f"must be one of {', '.join(map(repr, DURABILITY))}")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= 64:
        raise InvalidInput("replicas", "must be a whole number of replicas in [0, 64]")
    if (
        isinstance(wait_timeout, bool)
        or not isinstance(wait_timeout, (int, float))
        or not 0 < wait_timeout <= 3600
    ):
        raise InvalidInput("wait_timeout", "must be a number of seconds in (0, 3600]")


@attrs.frozen
class ServerDurability:
    """The server's settings as read at connect; ``None`` where they could not be read."""

    appendonly: str | None
    appendfsync: str | None
    role: str | None
    connected_replicas: int | None

    @property
    def known(self) -> bool:
        return self.appendonly is not None and self.appendfsync is not None

    @property
    def crash_safe(self) -> bool:
        """Every acknowledged write is on disk before the reply (AOF, fsync per write)."""
        return self.appendonly == "yes" and self.appendfsync == "always"


async def _config(client: Any, name: str, route: dict[str, Any]) -> str | None:
    try:
        reply = await client.execute_command("CONFIG", "GET", name, **route)
    except ResponseError:  # unknown command, renamed, or NOPERM
        return None
    # RESP2: [name, value]; RESP3 may answer a map.
    pairs = (
        dict(reply) if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
    )
    for key, value in pairs.items():
        if _text(key) == name:
            return _text(value)
    return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_server(client: Any, **route: Any) -> ServerDurability:
    """``CONFIG GET appendonly``, ``CONFIG GET appendfsync`` and ``INFO replication`` (on a
    cluster, ``route`` = ``target_nodes=`` the primary of the namespace's slot)."""
    appendonly = await _config(client, "appendonly", route)
    appendfsync = await _config(client, "appendfsync", route)
    try:
        info = await client.info("replication", **route)
    except ResponseError:
        info = {}
    replicas = info.get("connected_slaves")
    role = info.get("role")
    return ServerDurability(
        appendonly=appendonly,
        appendfsync=appendfsync,
        role=None if role is None else _text(role),
        connected_replicas=None if replicas is None else int(replicas),
    )


def apply_policy(server: ServerDurability, durability: str, replicas: int, namespace: str) -> None:
    """Warn (``ack``) or refuse (``strict``: :class:`BudgetUnavailable`, naming the settings
    to change) as the server's settings say."""
    where = f"redis ledger {namespace!r}"
    if not server.known:
        if durability == "strict":
            raise BudgetUnavailable(
                f"{where}: durability='strict' but the server refused CONFIG GET, so its "
                f"persistence cannot be checked; {_FIX}, allow CONFIG GET to this user, or "
                "pass durability='ack'"
            )
        log.warning(
            "%s: the server refused CONFIG GET (managed services often disable it): "
            "durability unknown, an acknowledged hold may be lost if the server crashes",
            where,
        )
    elif not server.crash_safe:
        settings = f"appendonly={server.appendonly}, appendfsync={server.appendfsync}"
        if durability == "strict":
            raise BudgetUnavailable(
                f"{where}: durability='strict' but the server runs {settings}: a crash "
                f"loses acknowledged holds; {_FIX}"
            )
        log.warning(
            "%s: THE SERVER CAN LOSE ACKNOWLEDGED HOLDS ON A CRASH (%s), and the guard "
            "would then admit their cost again; %s, or pass durability='off' to silence this",
            where,
            settings,
            _FIX,
        )
    if replicas and (server.connected_replicas or 0) < replicas:
        log.warning(
            "%s: replicas=%d but the server has %s connected; writes fail with "
            "BudgetUnavailable until enough replicas acknowledge them",
            where,
            replicas,
            "an unknown number" if server.connected_replicas is None else server.connected_replicas,
        )
