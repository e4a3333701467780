"""Braket devices the tests name, and a request signed by hand."""

from __future__ import annotations

from typing import Any

import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest

from quotaguard._http import HTTPClient
from quotaguard.braket.client import BraketClient
from quotaguard.braket.work import BraketTask
from quotaguard.testing import Emulator
from tests._support.aws import ACCESS_KEY, SECRET_KEY

__all__ = ["ACTION", "FORTE", "GARNET", "KEY", "SV1", "TASK", "Sends", "signed_request"]

FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
GARNET = "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet"
SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"

KEY = f"braket:{FORTE}"
ACTION = (
    '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}, '
    '"source": "OPENQASM 3;"}'
)
TASK = BraketTask(FORTE, shots=100)  # $0.30 + 100 x $0.08 = $8.30


class Sends:
    """A send of one Forte task of 100 shots, counting its calls."""

    def __init__(self, braket: BraketClient) -> None:
        self.braket = braket
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        return await self.braket.create_quantum_task(
            FORTE, ACTION, 100, "amazon-braket-test", f"t/{self.count}"
        )


async def signed_request(emu: Emulator, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """Send ``body`` to ``emu.url + path``, SigV4-signed by the test key; status and JSON."""
    request = AWSRequest(
        method=method, url=emu.url + path, data=body, headers={"Content-Type": "application/json"}
    )
    creds = botocore.credentials.ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, None)
    botocore.auth.SigV4Auth(creds, "braket", "us-east-1").add_auth(request)
    async with HTTPClient(provider="test") as http:
        resp = await http.request(
            method, request.url, headers=dict(request.headers.items()), data=body, idempotent=False
        )
    return resp.status, resp.json()
