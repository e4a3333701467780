"""The fleet ledger on Redis: every operation one EVALSHA of a small Lua script."""

try:
    import redis.asyncio  # noqa: F401  (the optional extra: fail here, in one line)
except ImportError as exc:
    from quotaguard._extras import missing

    raise missing("redis", "RedisLedger") from exc

from quotaguard.ledger.redis.durability import ServerDurability
from quotaguard.ledger.redis.ledger import RedisLedger
from quotaguard.ledger.redis.scripts import SCRIPTS

__all__ = ["SCRIPTS", "RedisLedger", "ServerDurability"]
