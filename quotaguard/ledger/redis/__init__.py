"""The fleet ledger on Redis: every operation one EVALSHA of a small Lua script."""

from quotaguard.ledger.redis.ledger import RedisLedger
from quotaguard.ledger.redis.scripts import SCRIPTS

__all__ = ["SCRIPTS", "RedisLedger"]
