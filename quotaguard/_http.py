"""The one aiohttp boundary: sessions, timeouts, bounded retries, transport-error mapping.

Everything above this module deals in :class:`~quotaguard._wire.Response` values (header keys
lower-cased here, once) and quotaguard errors; only here do aiohttp's types and exceptions
appear. ``CancelledError`` is never swallowed. No header value is ever logged or put into an
error message (they carry credentials), and an error answer is scrubbed of the owning client's
credentials and of anything shaped like one before any caller reads it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import attrs
import yarl

from quotaguard import _otel
from quotaguard._aio import AsyncClosing
from quotaguard._proxy import env_proxy, select_proxy
from quotaguard._wire import Response, scrub, scrub_response
from quotaguard.errors import InvalidInput, ProviderUnavailable

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = [
    "HTTPClient",
    "Response",
    "RetryPolicy",
    "check_endpoint",
    "check_timeout",
    "is_loopback",
    "set_testing",
]

log = logging.getLogger("quotaguard.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@attrs.frozen
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff, honouring ``Retry-After``.

    ``attempts`` counts the first try; a delay is ``uniform(0, min(cap, base * 2**n))`` seconds
    before retry ``n + 1``, or the server's ``Retry-After`` capped at ``max_retry_after``.
    """

    attempts: int = 4
    base: float = 0.2
    cap: float = 5.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


_DEFAULT = RetryPolicy()
# The same attempts as the default, with every wait (backoff and Retry-After) zero.
_TESTING = attrs.evolve(_DEFAULT, base=0.0, cap=0.0, max_retry_after=0.0)
_testing = False


def set_testing(on: bool) -> None:
    """Make the *default* retry policy wait zero time between attempts (for test suites).

    Clients made without ``retry=`` still try as often as ever (so retry-count tests hold),
    but wait zero seconds between tries, whatever ``Retry-After`` says; a :class:`RetryPolicy`
    passed explicitly is used as given. Takes effect on the next request, also of clients made
    before the call.
    """
    global _testing
    _testing = bool(on)


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(url: object, field: str = "base_url") -> str:
    """HTTPS only, except on loopback (the emulator). Credentials never travel in clear."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(field, "must be a non-empty URL string")
    try:
        parts = urlsplit(url)
        userinfo = parts.username or parts.password
    except ValueError:
        raise InvalidInput(field, "is not a valid URL") from None
    if userinfo:  # checked first: no message below may echo a URL that carries a secret
        raise InvalidInput(field, "credentials must not be embedded in the URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(field, f"{url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InvalidInput(
            field, f"{url!r} is not HTTPS; plain HTTP is allowed only on loopback (the emulator)"
        )
    return url.rstrip("/")


def check_timeout(value: object, field: str = "timeout") -> float:
    """A positive, finite number of seconds (not a ``bool``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInput(field, f"must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


class HTTPClient(AsyncClosing):
    """A reused ``ClientSession`` (or the caller's, which it never closes)."""

    def __init__(
        self,
        *,
        provider: str,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        configured_retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = _utcnow,
        secrets: Callable[[], Collection[str]] = tuple,
        proxies: Mapping[str, str] | None = None,
        error_trace: Callable[[Response], str | None] | None = None,
    ) -> None:
        self.provider = provider
        #: The provider's trace id of an error answer (IBM's ``trace``), put on its span.
        self._error_trace = error_trace
        #: requests-style proxy mapping (a saved qiskit account's ``proxies.urls``); it wins
        #: over HTTPS_PROXY for the URLs it covers.
        self._proxies = proxies
        self._session = session
        self._owns_session = session is None
        self._timeout = check_timeout(timeout)
        self._retry = retry
        self._configured_retry = configured_retry  # from the provider SDK's settings
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        #: The credentials the owning client holds now (key, secret, token): scrubbed from
        #: every error answer and transport error, with anything shaped like a credential.
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"HTTPClient(provider={self.provider!r}, timeout={self._timeout})"

    @property
    def retry(self) -> RetryPolicy:
        """The caller's policy if one was given; else the testing switch's waitless default;
        else the one the provider SDK's settings configure (``AWS_MAX_ATTEMPTS``); else the
        default."""
        if self._retry is not None:
            return self._retry
        if _testing:
            return _TESTING
        return self._configured_retry or _DEFAULT

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit=100),
                # HTTPS_PROXY/NO_PROXY are honoured per request by env_proxy (as requests and
                # botocore honour them), not by aiohttp's trust_env: two thread hops a request.
                trust_env=False,
            )
            self._owns_session = True
        return self._session

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Any,
        timeout: float,
        encoded: bool = False,
    ) -> Response:
        session = self._get_session()
        try:
            async with session.request(
                method,
                yarl.URL(url, encoded=True) if encoded else url,
                headers=headers,
                data=data,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
                proxy=select_proxy(url, self._proxies)
                or (env_proxy(url) if self._owns_session else None),
            ) as resp:
                body = await resp.read()
                # Lower-cased once, here: every caller looks a header up in one spelling.
                headers = {key.lower(): value for key, value in resp.headers.items()}
                return Response(resp.status, headers, body, url)
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            raise ProviderUnavailable(
                f"{method} {url} timed out after {timeout:g}s", provider=self.provider
            ) from exc
        except aiohttp.ClientError as exc:
            # str(exc) of aiohttp errors names host and reason only, never headers. A connector
            # error (DNS, refused, TLS, proxy) comes before any byte of the request is written.
            raise ProviderUnavailable(
                scrub(f"{method} {url} failed: {type(exc).__name__}: {exc}", self._secrets()),
                provider=self.provider,
                request_sent=False if isinstance(exc, aiohttp.ClientConnectorError) else None,
            ) from exc

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | str | Mapping[str, str] | None = None,
        idempotent: bool,
        timeout: float | None = None,
        safe_statuses: Collection[int] = (),
        encoded: bool = False,
    ) -> Response:
        """Send, retrying 429/5xx/connection errors only when ``idempotent``.

        A non-idempotent request is sent once, except that ``safe_statuses`` (e.g. ``{429}``,
        a refusal before the server acted) may still be retried. After the last attempt, a
        retryable *status* is returned for the caller to map; a transport failure raises
        :class:`ProviderUnavailable`. The URL must pass :func:`check_endpoint`.

        ``encoded=True`` sends an already percent-encoded URL byte for byte; by default yarl
        normalises it (``%3A`` → ``:``), which breaks a signature computed over the path.
        """
        check_endpoint(url, "url")
        tracer = _otel.tracer()
        if tracer is None:
            return await self._request(method, url, headers, data, idempotent, timeout,
                                       safe_statuses, encoded, None)  # fmt: skip
        parts = urlsplit(url)
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            # Scrubbed as every error text is: a presigned URL carries its signature.
            "url.full": scrub(url, self._secrets()),
            "server.address": parts.hostname or "",
            "quotaguard.provider": self.provider,
        }
        if parts.port is not None:
            attributes["server.port"] = parts.port
        from opentelemetry.trace import SpanKind, StatusCode  # loaded: a tracer exists

        kind = SpanKind.CLIENT
        with tracer.start_as_current_span(method, kind=kind, attributes=attributes) as span:
            response = await self._request(method, url, headers, data, idempotent, timeout,
                                           safe_statuses, encoded, span)  # fmt: skip
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 400:
                span.set_attribute("error.type", str(response.status))
                span.set_status(StatusCode.ERROR)
                trace_id = self._error_trace(response) if self._error_trace else None
                if trace_id:
                    span.set_attribute("quotaguard.provider.trace_id", trace_id)
            return response

    async def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: bytes | str | Mapping[str, str] | None,
        idempotent: bool,
        timeout: float | None,
        safe_statuses: Collection[int],
        encoded: bool,
        span: Span | None,
    ) -> Response:
        total = self._timeout if timeout is None else check_timeout(timeout)
        retry_on = RETRY_STATUSES if idempotent else RETRY_STATUSES & frozenset(safe_statuses)
        policy = self.retry
        attempts = policy.attempts if (idempotent or retry_on) else 1
        unsent = True  # no earlier attempt may have reached the server
        for attempt in range(attempts):
            last = attempt == attempts - 1
            if attempt and span is not None:
                span.set_attribute("http.request.resend_count", attempt)
            try:
                response = await self._once(method, url, headers, data, total, encoded)
            except ProviderUnavailable as exc:
                if last or not idempotent:
                    if not unsent:
                        exc.request_sent = None  # this attempt was not written; one before may be
                    raise
                unsent = unsent and exc.request_sent is False
                delay = policy.delay(attempt, None, self._rng)
                log.debug(
                    "%s %s: transport error, retry %d in %.2fs", method, url, attempt + 1, delay
                )
                await self._sleep(delay)
                continue
            log.debug("%s %s -> %d", method, url, response.status)
            if not response.ok:
                # The one place a provider's error text enters the library: from here on no
                # message, exception or log built from it can carry a credential.
                response = scrub_response(response, self._secrets())
            if response.status not in retry_on or last:
                return response
            unsent = False
            retry_after = _retry_after(response.headers, self._clock())
            delay = policy.delay(attempt, retry_after, self._rng)
            log.debug(
                "%s %s: HTTP %d, retry %d in %.2fs",
                method,
                url,
                response.status,
                attempt + 1,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
