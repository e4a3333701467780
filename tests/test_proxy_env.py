"""The library's own aiohttp sessions honour HTTP(S)_PROXY/NO_PROXY, as the SDKs' clients do."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from quotaguard._http import HTTPClient
from quotaguard.errors import ProviderUnavailable


async def test_the_session_goes_through_the_environment_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])  # a proxy gets the target's host
        return web.json_response({"via": "proxy"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = HTTPClient(provider="ibm")
    url = "http://provider.invalid/v1/x"  # _once: request() would refuse plain HTTP off loopback
    try:
        reply = await client._once("GET", url, None, None, 5)
        assert json.loads(reply.body) == {"via": "proxy"}
        assert seen == ["provider.invalid"]
        # Read per request: a NO_PROXY set after the session opened applies at once.
        monkeypatch.setenv("NO_PROXY", "provider.invalid")  # bypassed: name not resolvable
        with pytest.raises(ProviderUnavailable):
            await client._once("GET", url, None, None, 5)
        assert seen == ["provider.invalid"]
        monkeypatch.setenv("NO_PROXY", "other.invalid")
        monkeypatch.delenv("HTTP_PROXY")
        monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{port}")  # the catch-all
        reply = await client._once("GET", url, None, None, 5)
        assert seen == ["provider.invalid"] * 2
    finally:
        await client.aclose()
        await runner.cleanup()
