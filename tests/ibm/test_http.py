"""quotaguard._http against a real aiohttp test server on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from quotaguard._http import HTTPClient, RetryPolicy, check_endpoint, is_loopback, set_testing
from quotaguard.errors import InvalidInput, ProviderUnavailable
from tests._support.sleeps import Sleeps

HITS = web.AppKey("hits", list[int])
RELEASE = web.AppKey("release", asyncio.Event)


async def slow(request: web.Request) -> web.Response:
    # Held until the fixture ends, so teardown never waits on a sleeping handler.
    await request.app[RELEASE].wait()
    return web.Response(text="late")


async def cut(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "100"})
    await response.prepare(request)
    await response.write(b"0123456789")
    assert request.transport is not None
    request.transport.close()  # reset mid-body
    return response


async def flaky(request: web.Request) -> web.Response:
    counter = request.app[HITS]
    counter.append(1)
    if len(counter) == 1:
        return web.Response(status=503, headers={"Retry-After": "Sat, 21 Nov 2026 12:00:04 GMT"})
    return web.json_response({"ok": True})


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True}, headers={"X-Request-Id": "r-1"})


async def down(request: web.Request) -> web.Response:
    request.app[HITS].append(1)
    return web.Response(status=503, headers={"Retry-After": "30"})


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app[HITS] = []
    app[RELEASE] = asyncio.Event()
    app.router.add_get("/slow", slow)
    app.router.add_get("/cut", cut)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/ok", ok)
    app.router.add_get("/down", down)
    async with TestServer(app, host="127.0.0.1") as srv:
        try:
            yield srv
        finally:
            app[RELEASE].set()


async def test_timeout_is_provider_unavailable(server: TestServer, sleeps: Sleeps) -> None:
    async with HTTPClient(provider="t", sleep=sleeps, retry=RetryPolicy(attempts=2)) as http:
        with pytest.raises(ProviderUnavailable) as info:
            await http.request("GET", str(server.make_url("/slow")), idempotent=True, timeout=0.05)
    assert "timed out" in str(info.value)
    assert len(sleeps.delays) == 1  # one retry, then the error


async def test_cancelled_error_propagates(server: TestServer) -> None:
    async with HTTPClient(provider="t") as http:
        task = asyncio.create_task(
            http.request("GET", str(server.make_url("/slow")), idempotent=True)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_connection_reset_mid_body(server: TestServer, sleeps: Sleeps) -> None:
    async with HTTPClient(provider="t", sleep=sleeps) as http:
        with pytest.raises(ProviderUnavailable):
            await http.request("GET", str(server.make_url("/cut")), idempotent=False)
    assert sleeps.delays == []  # not idempotent: not retried


async def test_connection_refused_retried_only_when_idempotent(sleeps: Sleeps) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    url = f"http://127.0.0.1:{port}/"
    async with HTTPClient(provider="t", sleep=sleeps, retry=RetryPolicy(attempts=3)) as http:
        with pytest.raises(ProviderUnavailable):
            await http.request("GET", url, idempotent=True)
        assert len(sleeps.delays) == 2
        with pytest.raises(ProviderUnavailable):
            await http.request("POST", url, idempotent=False)
        assert len(sleeps.delays) == 2


async def test_retry_after_http_date_uses_the_injected_clock(
    server: TestServer, sleeps: Sleeps
) -> None:
    now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    retry = RetryPolicy()  # explicit: the testing switch would make the wait zero
    async with HTTPClient(provider="t", sleep=sleeps, clock=lambda: now, retry=retry) as http:
        response = await http.request("GET", str(server.make_url("/flaky")), idempotent=True)
    assert response.ok
    assert response.json() == {"ok": True}
    assert sleeps.delays == [4.0]


async def test_header_keys_are_lower_case(server: TestServer) -> None:
    async with HTTPClient(provider="t") as http:
        response = await http.request("GET", str(server.make_url("/ok")), idempotent=True)
    assert response.headers["x-request-id"] == "r-1"
    assert response.headers["content-type"].startswith("application/json")
    assert all(key == key.lower() for key in response.headers)


# -- the testing switch (the root conftest turns it on for every test) ----------------------


async def test_the_testing_switch_keeps_attempts_and_waits_zero(
    server: TestServer, sleeps: Sleeps
) -> None:
    async with HTTPClient(provider="t", sleep=sleeps) as http:
        response = await http.request("GET", str(server.make_url("/down")), idempotent=True)
    assert response.status == 503
    assert len(server.app[HITS]) == RetryPolicy().attempts  # the default's four tries
    assert sleeps.delays == [0.0, 0.0, 0.0]  # Retry-After: 30 ignored too


async def test_an_explicit_policy_wins_over_the_testing_switch(
    server: TestServer, sleeps: Sleeps
) -> None:
    retry = RetryPolicy(attempts=2, max_retry_after=12.0)
    async with HTTPClient(provider="t", sleep=sleeps, retry=retry) as http:
        await http.request("GET", str(server.make_url("/down")), idempotent=True)
    assert len(server.app[HITS]) == 2
    assert sleeps.delays == [12.0]  # Retry-After: 30, capped by this policy
    assert http.retry is retry


async def test_the_switch_applies_to_clients_already_made(
    server: TestServer, sleeps: Sleeps
) -> None:
    async with HTTPClient(provider="t", sleep=sleeps) as http:
        assert http.retry.cap == 0 and http.retry.max_retry_after == 0
        set_testing(False)
        try:
            assert http.retry == RetryPolicy()
            await http.request("GET", str(server.make_url("/down")), idempotent=True)
        finally:
            set_testing(True)
    assert sleeps.delays == [30.0, 30.0, 30.0]  # the server's Retry-After, as in production


async def test_non_https_non_loopback_refused() -> None:
    async with HTTPClient(provider="t") as http:
        with pytest.raises(InvalidInput) as info:
            await http.request("GET", "http://example.com/x", idempotent=True)
    assert info.value.field == "url"


async def test_caller_session_is_not_closed(server: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with HTTPClient(provider="t", session=session) as http:
            response = await http.request("GET", str(server.make_url("/ok")), idempotent=True)
        assert response.status == 200
        assert not session.closed


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://quantum.cloud.ibm.com/api", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:1", True),
        ("http://[::1]:9/", True),
        ("http://quantum.cloud.ibm.com/api", False),
        ("ftp://127.0.0.1/", False),
        ("https://user:pw@quantum.cloud.ibm.com", False),
        ("", False),
    ],
)
def test_check_endpoint(url: str, ok: bool) -> None:
    if ok:
        assert check_endpoint(url) == url.rstrip("/")
    else:
        with pytest.raises(InvalidInput):
            check_endpoint(url)


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.2")
    assert not is_loopback("10.0.0.1")
    assert not is_loopback(None)
