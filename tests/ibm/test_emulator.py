"""The IBM half of the emulator, spoken to with raw HTTP: header enforcement, error shapes,
token expiry, job submission and sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from quotaguard._http import HTTPClient
from quotaguard.testing import Emulator, FakeClock
from tests._support.ibm import OPEN_CRN
from tests._support.ibm_wire import GRANT, call, token


@pytest.fixture
async def http() -> AsyncIterator[HTTPClient]:
    async with HTTPClient(provider="test") as client:
        yield client


async def test_iam_rejects_bad_grant_and_key(http: HTTPClient, emu: Emulator) -> None:
    bad_grant = await http.request(
        "POST", emu.url + "/identity/token", data={"grant_type": "password"}, idempotent=True
    )
    assert bad_grant.status == 400
    assert bad_grant.json()["errorCode"] == "BXNIM0109E"
    bad_key = await http.request(
        "POST",
        emu.url + "/identity/token",
        data={"grant_type": GRANT, "apikey": "nope"},
        idempotent=True,
    )
    assert bad_key.json()["errorCode"] == "BXNIM0415E"


async def test_header_enforcement_and_error_shapes(http: HTTPClient, emu: Emulator) -> None:
    status, body = await call(http, emu, "GET", "/instance", bearer=None)
    assert status == 401
    assert set(body) == {"errors", "trace"}
    assert set(body["errors"][0]) == {"code", "message", "more_info"}  # ErrorContainer
    status, body = await call(http, emu, "GET", "/instances/usage", bearer="forged")
    assert status == 401
    assert set(body["errors"][0]) == {"code", "message", "solution", "more_info"}  # Generic
    assert isinstance(body["errors"][0]["code"], int)
    good = await token(http, emu)
    status, body = await call(http, emu, "GET", "/instance", bearer=good, crn=None)
    assert (status, body["errors"][0]["code"]) == (400, "missing_service_crn")
    status, body = await call(http, emu, "GET", "/instance", bearer=good, version="latest")
    assert (status, body["errors"][0]["code"]) == (400, "invalid_api_version")
    status, _ = await call(http, emu, "GET", "/instance", bearer=good, version=None)
    assert status == 200  # the version header is optional


async def test_token_expires_with_the_clock(
    http: HTTPClient, emu: Emulator, clock: FakeClock
) -> None:
    emu.ibm.token_lifetime = 60
    good = await token(http, emu)
    assert (await call(http, emu, "GET", "/instances/usage", bearer=good))[0] == 200
    clock.advance(seconds=60)
    assert (await call(http, emu, "GET", "/instances/usage", bearer=good))[0] == 401


async def test_put_configuration_validates_body(http: HTTPClient, emu: Emulator) -> None:
    good = await token(http, emu)
    for bad in ({"instance_limit": 0}, {"instance_limit": "5"}, {"instance_limit": True}, [1]):
        status, body = await call(
            http, emu, "PUT", "/instances/configuration", bearer=good, body=bad
        )
        assert (status, body["errors"][0]["code"]) == (400, "invalid_request")
    status, _ = await call(http, emu, "GET", "/accounts/bad%20id", bearer=good)
    assert status == 400


async def test_submit_and_complete_a_job(http: HTTPClient, emu: Emulator) -> None:
    good = await token(http, emu)
    status, body = await call(
        http,
        emu,
        "POST",
        "/jobs",
        bearer=good,
        body={"program_id": "sampler", "backend": "ibm_emulated", "cost": 300},
    )
    assert status == 200
    job_id = body["id"]
    status, job = await call(http, emu, "GET", f"/jobs/{job_id}", bearer=good)
    assert (job["status"], job["state"]["status"], job["cost"]) == ("Queued", "Queued", 300)
    emu.ibm.set_job_status(job_id, "Running")
    emu.ibm.complete_job(job_id, quantum_seconds=30)
    _, usage = await call(http, emu, "GET", "/instances/usage", bearer=good)
    assert usage["usage_consumed_seconds"] == 150.5
    status, body = await call(
        http, emu, "POST", "/jobs", bearer=good, body={"backend": "ibm_emulated", "cost": 0}
    )
    assert status == 400
    status, body = await call(http, emu, "POST", "/jobs", bearer=good, body={"backend": "x"})
    assert (status, body["errors"][0]["code"]) == (400, "invalid_backend")


async def test_job_refused_when_limit_reached(http: HTTPClient, emu: Emulator) -> None:
    emu.ibm.instances[OPEN_CRN].consumed_seconds = emu.ibm.instances[OPEN_CRN].limit_seconds
    good = await token(http, emu)
    status, body = await call(
        http, emu, "POST", "/jobs", bearer=good, crn=OPEN_CRN, body={"backend": "ibm_emulated"}
    )
    assert (status, body["errors"][0]["code"]) == (403, "usage_limit_reached")
    _, usage = await call(http, emu, "GET", "/instances/usage", bearer=good, crn=OPEN_CRN)
    assert usage["usage_limit_reached"] is True


async def test_sessions_and_backends(http: HTTPClient, emu: Emulator) -> None:
    good = await token(http, emu)
    status, body = await call(
        http, emu, "POST", "/sessions", bearer=good, crn=OPEN_CRN, body={"mode": "dedicated"}
    )
    assert (status, body["errors"][0]["code"]) == (403, "sessions_not_allowed")
    status, body = await call(
        http, emu, "POST", "/sessions", bearer=good, crn=OPEN_CRN, body={"mode": "batch"}
    )
    assert (status, body["max_ttl"]) == (200, 600)
    status, session = await call(
        http, emu, "GET", f"/sessions/{body['id']}", bearer=good, crn=OPEN_CRN
    )
    assert (status, session["mode"], session["state"]) == (200, "batch", "open")
    status, body = await call(http, emu, "GET", "/backends", bearer=good)
    assert [d["name"] for d in body["devices"]] == ["ibm_emulated"]


async def test_an_emulator_that_cannot_listen_leaves_nothing_open() -> None:
    import gc
    import socket
    import warnings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            for emu in (Emulator(port=port), Emulator(host="999.1.1.1", port=0)):
                with pytest.raises(OSError):
                    await emu.start()
                gc.collect()  # a leaked socket would warn here, and the warning is an error
                assert repr(emu) == "Emulator(not started)"
