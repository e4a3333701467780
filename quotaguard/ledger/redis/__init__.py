"""The fleet ledger on Redis: every operation one EVALSHA of a small Lua script."""

from quotaguard.ledger.redis.ledger import LUA_SOURCE, RedisLedger

__all__ = ["LUA_SOURCE", "RedisLedger"]
