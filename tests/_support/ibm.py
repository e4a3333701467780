"""The IBM instances and key of tests/ibm, and an IBM client made for the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quotaguard import RetryPolicy
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.testing import Emulator, FakeClock
from tests._support.secrets import IBM_TEST_API_KEY

__all__ = [
    "ACCOUNT",
    "API_KEY",
    "CRN",
    "OPEN_CRN",
    "OTHER_CRN",
    "ClientFactory",
    "emulated_ibm_client",
]

API_KEY = IBM_TEST_API_KEY
ACCOUNT = "acct-1"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-1:inst-1::"
OPEN_CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-1:open-1::"
OTHER_CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-2:inst-9::"

#: The ``make_client`` fixture: keyword arguments of IBMRuntimeClient over the test defaults.
ClientFactory = Callable[..., IBMRuntimeClient]


def emulated_ibm_client(
    emulator: Emulator, clock: FakeClock, key: str, crn: str, **options: Any
) -> IBMRuntimeClient:
    """A real IBMRuntimeClient on the emulator: one attempt, 2 s timeout (no slow retries);
    ``options`` are further keyword arguments of IBMRuntimeClient (``api_version=``)."""
    return IBMRuntimeClient(
        key,
        crn,
        base_url=f"{emulator.url}/api",
        iam_url=emulator.url,
        clock=clock,
        retry=RetryPolicy(attempts=1),
        timeout=2,
        **options,
    )
