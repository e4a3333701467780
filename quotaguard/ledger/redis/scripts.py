"""The RedisLedger's Lua scripts: one per operation, each still a single EVALSHA.

``lua/<operation>.lua`` starts with ``--! needs: <helper> ...``: the shared helper files
(``lua/base.lua``, ``lua/holds.lua``, ``lua/usage.lua``) that go before it, in that order.
The joined text is the operation's script; it is read once, at import.

Keys (lua/base.lua says why): a script names every key it touches with ``K(name)`` and
each call declares them all in ``KEYS``. :data:`KEYS_OF` holds the namespace-wide keys an
operation touches; the ledger adds the keys its arguments name (:func:`budget_keys` for a
budget, ``r:<id>`` for a reservation). Keys a script only finds by reading it asks for
(``want()`` in a read phase before any write; the reply ``{'need', key...}``), and the call
is sent again with them. Keys found by ``SCAN`` the ledger scans from Python and declares
(:mod:`.scanned`). A new script: name its keys with ``K()``, ``want()`` what it finds, and
add its entry here.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "BUDGET_KINDS",
    "HOLD_KINDS",
    "KEYS_OF",
    "OPERATIONS",
    "SCRIPTS",
    "budget_keys",
    "sha1",
]

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
    "reservations",
    "formula",  # a test hook: the used/remaining formula alone
)

#: What finishing due leases touches (every script that expires them first).
_EXPIRY = ("leases", "idem", "doubt", "lapsed", "ended")

#: Operation -> the namespace-wide keys its script touches (without the prefix).
KEYS_OF: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "put_budget": ("budgets",),
        "remove_budget": ("budgets",),
        "get_budget": (),
        "budgets": ("budgets",),
        "reserve": _EXPIRY,
        "cancel": _EXPIRY,
        "commit": _EXPIRY,
        "release": _EXPIRY,
        "renew": _EXPIRY,
        "renew_many": _EXPIRY,
        "expire": _EXPIRY,
        "bind": ("ext", "doubt", "lapsed"),
        "mark_in_doubt": ("doubt",),
        "get": (),
        "find_external": ("ext",),
        "outstanding": ("leases",),
        "in_doubt": ("doubt",),
        "lapsed": ("lapsed",),
        "record_report": (),
        "state": _EXPIRY,
        "committed_between": (),
        # Each budget's keys and the ended records are asked for (want()); the ids a
        # SCAN finds (list_ended, reservations) are declared by the ledger.
        "trim": ("budgets", "ended", "idem", "ext", "lapsed"),
        "list_ended": ("ended", "lapsed", "ended_listed"),
        "reservations": (),
        "formula": (),
    }
)

#: A budget's keys: its hash, commits by commit time and by floor time, per-month sums and
#: the send times of its holds. Letting a hold go touches the first and the last.
HOLD_KINDS = ("b:", "s:")
BUDGET_KINDS = ("b:", "c:", "f:", "m:", "s:")


def budget_keys(*keys: str, kinds: tuple[str, ...] = BUDGET_KINDS) -> tuple[str, ...]:
    """The keys of these budgets (without the prefix): every kind, or those of ``kinds``.

    Declare no more than a script touches: during a slot migration a declared key that
    exists on neither node holds the call back (TRYAGAIN) until the migration ends."""
    return tuple(kind + key for key in keys for kind in kinds)


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
if set(KEYS_OF) != set(OPERATIONS):
    raise RuntimeError("scripts.KEYS_OF must name the keys of every operation, and only those")
