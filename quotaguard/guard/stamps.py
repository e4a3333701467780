"""How a guarded send stamps its work with the reservation id, so that a send in doubt can be
found again (DESIGN.md, "Sends in doubt").

- Braket: task tag ``quotaguard:reservation=<id>`` and a ``clientToken`` derived from the id
  (a retried ``CreateQuantumTask`` of the same hold creates one task, never two);
- IBM: job tag ``quotaguard:<id>``.

A send that takes the reservation id is wrapped in :class:`Stamped`; ``BudgetGuard.submit``
calls it with the id of the hold it made, once admitted.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from quotaguard.engine.model import Reservation
from quotaguard.errors import QuotaGuardError

__all__ = [
    "BRAKET_TAG_KEY",
    "Stamped",
    "braket_tag",
    "client_token",
    "first_found",
    "ibm_tag",
    "may_have_sent",
]

log = logging.getLogger("quotaguard.guard")

#: The key of the Braket task tag whose value is the reservation id.
BRAKET_TAG_KEY = "quotaguard:reservation"
#: The prefix of the IBM job tag; the reservation id follows it.
IBM_TAG_PREFIX = "quotaguard:"
#: Fixed, so every process derives the same token from the same id.
_TOKEN_NAMESPACE = uuid.UUID("5c1b0a39-3f8e-4d55-9d0e-6a7c2f4b9e21")
#: Provider budget keys start so; a hold charging none of them may be any provider's.
_PROVIDER_PREFIXES = ("ibm:", "braket:")


def braket_tag(reservation_id: str) -> dict[str, str]:
    return {BRAKET_TAG_KEY: reservation_id}


def ibm_tag(reservation_id: str) -> str:
    return IBM_TAG_PREFIX + reservation_id


def client_token(reservation_id: str) -> str:
    """A ``clientToken`` (36 characters, within Braket's 64) that only this hold produces."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, reservation_id))


def may_have_sent(reservation: Reservation, own: Callable[[str], bool]) -> bool:
    """Whether a provider should look for this hold's work: it charges one of the provider's
    budgets (``own``), or no provider budget at all (your own budgets only: any provider's)."""
    keys = [c.budget for c in reservation.charges]
    return any(own(k) for k in keys) or not any(k.startswith(_PROVIDER_PREFIXES) for k in keys)


async def first_found(lookup: Awaitable[list[str]], reservation: Reservation) -> str | None:
    """The first id ``lookup`` finds; a failed lookup finds nothing (logged): the hold then
    takes the in-doubt path without it rather than stall on a provider that cannot answer."""
    try:
        found = await lookup
    except QuotaGuardError as exc:
        log.warning("looking up the work of in-doubt %s failed: %s", reservation.id, exc)
        return None
    if len(found) > 1:
        # One hold, one send: more means something resent it (qiskit-ibm-runtime retries a
        # POST /jobs on 5xx itself). Binding one would settle the hold at one job's cost and
        # count the others nowhere, so bind none: the hold keeps the custom-send rule (one
        # lease, then a provider report that postdates it carries every job).
        log.warning(
            "%d jobs carry the tag of in-doubt %s (%s); binding none, the hold stays until a "
            "provider report carries them",
            len(found),
            reservation.id,
            ", ".join(found),
        )
        return None
    return found[0] if found else None


@attrs.frozen
class Stamped:
    """A send that takes the reservation id: ``BudgetGuard.submit(work, Stamped(send))`` calls
    ``send(reservation_id)`` once the hold is made (sync or async, like any send)."""

    send: Callable[[str | None], Any]

    def bind(self, reservation_id: str | None) -> Callable[[], Any]:
        """The send for this hold (``None``: the work holds nothing, so there is no stamp)."""
        return functools.partial(self.send, reservation_id)
