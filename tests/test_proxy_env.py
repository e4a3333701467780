"""The library's own aiohttp sessions honour HTTP(S)_PROXY/NO_PROXY, as the SDKs' clients do."""

from __future__ import annotations

import pytest
from aiohttp import web

from quotaguard._http import HTTPClient


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
    try:
        async with client._get_session().get("http://provider.invalid/v1/x") as reply:
            assert await reply.json() == {"via": "proxy"}
        assert seen == ["provider.invalid"]
        monkeypatch.setenv("NO_PROXY", "provider.invalid")  # bypassed: name not resolvable
        with pytest.raises(OSError):
            async with client._get_session().get("http://provider.invalid/v1/x"):
                pass
        assert seen == ["provider.invalid"]
    finally:
        await client.aclose()
        await runner.cleanup()
