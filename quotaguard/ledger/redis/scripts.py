"""The RedisLedger's Lua scripts: one per operation, each still a single EVALSHA.

``lua/<operation>.lua`` starts with ``--! needs: <helper> ...``: the shared helper files
(``lua/base.lua``, ``lua/holds.lua``, ``lua/usage.lua``) that go before it, in that order.
The joined text is the operation's script; it is read once, at import.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["OPERATIONS", "SCRIPTS", "sha1"]

#: Every operation the ledger sends, one script each.
OPERATIONS = (
    "put_budget",
    "remove_budget",
    "get_budget",
    "budgets",
    "reserve",
    "cancel",
    "commit",
    "release",
    "renew",
    "renew_many",
    "expire",
    "bind",
    "mark_in_doubt",
    "get",
    "find_external",
    "outstanding",
    "in_doubt",
    "lapsed",
    "record_report",
    "state",
    "committed_between",
    "trim",
    "list_ended",
    "formula",  # a test hook: the used/remaining formula alone
)

_NEEDS = "--! needs:"
_LUA = importlib.resources.files("quotaguard.ledger.redis").joinpath("lua")


def _read(name: str) -> str:
    return _LUA.joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _script(operation: str) -> str:
    body = _read(operation)
    first = body.split("\n", 1)[0]
    if not first.startswith(_NEEDS):
        raise RuntimeError(f"lua/{operation}.lua must start with {_NEEDS!r}")
    helpers = [_read(name) for name in first.removeprefix(_NEEDS).split()]
    return "\n".join([*helpers, body])


def sha1(source: str) -> str:
    """The id Redis gives a script (what EVALSHA names)."""
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


#: Operation name -> the full text of its script.
SCRIPTS: Mapping[str, str] = MappingProxyType({op: _script(op) for op in OPERATIONS})
