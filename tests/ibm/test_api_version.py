"""The ``IBM-API-Version`` header is the one the newest supported qiskit-ibm-runtime sends
(issue 12 item 10): read from the installed SDK, and seen by the emulator on the wire."""

from __future__ import annotations

from qiskit_ibm_runtime.api.rest.base import RestAdapterBase

from quotaguard.ibm import DEFAULT_API_VERSION
from quotaguard.testing import Emulator
from tests._support.ibm import ClientFactory


def test_the_api_version_is_the_installed_sdks() -> None:
    assert RestAdapterBase._HEADER_API_VERSION["IBM-API-Version"] == DEFAULT_API_VERSION


async def test_the_client_sends_it(emu: Emulator, make_client: ClientFactory) -> None:
    await make_client().get_usage()
    assert emu.ibm.api_versions == {DEFAULT_API_VERSION}
