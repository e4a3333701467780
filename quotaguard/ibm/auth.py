"""IBM Cloud IAM: exchange an API key for a bearer token, cached, one refresh in flight.

However many coroutines ask for a token at once, at most one ``POST /identity/token`` is in
flight: the others await the same task (shielded, so one caller's cancellation does not cancel
the refresh for everyone). The token is reused until shortly before its ``expiration``; a 401
from the API invalidates exactly the token that was refused, so fifty concurrent 401s still
cause one refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from quotaguard.errors import InvalidInput
from quotaguard.ibm.models import IAMToken
from quotaguard.ibm.sansio import build_iam_token, decipher_token

if TYPE_CHECKING:  # the client hands its HTTPClient in; importing Secret loads no aiohttp
    from quotaguard._http import HTTPClient

__all__ = ["IAMAuth", "Secret"]

log = logging.getLogger("quotaguard.ibm.auth")


class Secret:
    """A credential that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:  # never pickled into a crash dump by accident
        raise TypeError("a Secret cannot be pickled")


class _Cached:
    __slots__ = ("refresh_at", "value")

    def __init__(self, value: str, refresh_at: datetime) -> None:
        self.value = value
        self.refresh_at = refresh_at


class IAMAuth:
    """Bearer tokens for one API key. ``await token()``; ``invalidate(t)`` after a 401."""

    def __init__(
        self,
        api_key: Secret,
        *,
        iam_url: str,
        http: HTTPClient,
        clock: Callable[[], datetime],
        max_margin: float = 60.0,
    ) -> None:
        if not api_key.reveal():
            raise InvalidInput("api_key", "must not be empty")
        self._api_key = api_key
        self._url = iam_url.rstrip("/") + "/identity/token"
        self._http = http
        self._clock = clock
        self._max_margin = max_margin
        self._cached: _Cached | None = None
        # The latest tokens issued, newest first: an error may still quote one just replaced.
        self._recent: tuple[str, ...] = ()
        self._inflight: asyncio.Task[_Cached] | None = None
        #: How many token exchanges this object made (for tests and metrics).
        self.exchanges = 0

    def __repr__(self) -> str:
        return f"IAMAuth(url={self._url!r})"

    async def token(self) -> str:
        cached = self._cached
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        task = self._inflight
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._exchange())
            task.add_done_callback(self._done)
            self._inflight = task
        # Shielded: a cancelled caller leaves the shared refresh running for the others.
        return (await asyncio.shield(task)).value

    def secrets(self) -> tuple[str, ...]:
        """What this object holds that no message may show: the API key and recent tokens."""
        return (self._api_key.reveal(), *self._recent)

    def invalidate(self, token: str) -> None:
        """Forget ``token`` if it is still the cached one (a newer token stays)."""
        if self._cached is not None and self._cached.value == token:
            self._cached = None

    def _done(self, task: asyncio.Task[_Cached]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _exchange(self) -> _Cached:
        form, headers = build_iam_token(self._api_key.reveal())
        self.exchanges += 1
        log.debug("IAM token exchange at %s", self._url)
        response = await self._http.request(
            "POST", self._url, headers=headers, data=form, idempotent=True
        )
        token = decipher_token(response)
        # Cached here, as the exchange ends, not in a done-callback a loop turn later: a
        # caller in between would see the task done, no token, and start another exchange.
        cached = self._cached = _Cached(token.access_token, self._refresh_at(token))
        self._recent = (cached.value, *self._recent[:3])
        return cached

    def _refresh_at(self, token: IAMToken) -> datetime:
        now = self._clock()
        lifetime = token.expires_in
        if lifetime is None and token.expiration is not None:
            lifetime = max(int(token.expiration - now.timestamp()), 0)
        if lifetime is None:
            lifetime = 3600  # IAM's documented default
        # Refresh a little early: at most a minute, at most a fifth of a short lifetime.
        margin = min(self._max_margin, lifetime * 0.2)
        return now + timedelta(seconds=lifetime - margin)
