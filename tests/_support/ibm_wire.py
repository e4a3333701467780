"""The IBM half of the emulator spoken to with raw HTTP: an IAM token, and one API call with
the headers the service checks."""

from __future__ import annotations

import json
from typing import Any

from quotaguard._http import HTTPClient
from quotaguard.testing import Emulator
from tests._support.ibm import API_KEY, CRN

__all__ = ["GRANT", "call", "token"]

GRANT = "urn:ibm:params:oauth:grant-type:apikey"


async def token(http: HTTPClient, emu: Emulator) -> str:
    response = await http.request(
        "POST",
        emu.url + "/identity/token",
        data={"grant_type": GRANT, "apikey": API_KEY},
        idempotent=True,
    )
    assert response.status == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == emu.ibm.token_lifetime
    return str(body["access_token"])


async def call(
    http: HTTPClient,
    emu: Emulator,
    method: str,
    path: str,
    *,
    bearer: str | None,
    crn: str | None = CRN,
    version: str | None = "2026-03-15",
    body: Any = None,
) -> tuple[int, Any]:
    headers = {}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if crn is not None:
        headers["Service-CRN"] = crn
    if version is not None:
        headers["IBM-API-Version"] = version
    data = None if body is None else json.dumps(body)
    response = await http.request(
        method, emu.url + "/api/v1" + path, headers=headers, data=data, idempotent=False
    )
    return response.status, response.json()
