"""Braket fixtures: fixed test credentials, our client and a stock boto3 client at the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import botocore.session
import pytest

from quotaguard.braket import BraketClient
from quotaguard.testing import Emulator
from tests.conftest import FakeClock
from tests.secrets import AWS_TEST_SECRET_KEY, AWS_TEST_SESSION_TOKEN

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = AWS_TEST_SECRET_KEY
SESSION_TOKEN = AWS_TEST_SESSION_TOKEN
FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    # Never pick up a developer's real profile, endpoint or credentials.
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BRAKET",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "BRAKET_PRICE_OFFERS_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[Emulator]:
    """The shared emulator, verifying SigV4 signatures by the test credentials."""
    async with Emulator(clock=clock) as emu:
        emu.braket.add_credentials(ACCESS_KEY, SECRET_KEY)
        yield emu


def botocore_session(token: str | None = None) -> botocore.session.Session:
    session = botocore.session.get_session()
    session.set_credentials(ACCESS_KEY, SECRET_KEY, token)
    return session


@pytest.fixture
async def braket(emulator: Emulator) -> AsyncIterator[BraketClient]:
    async with BraketClient(
        "us-east-1",
        endpoint_url=emulator.url,
        botocore_session=botocore_session(SESSION_TOKEN),
    ) as client:
        yield client


@pytest.fixture
def boto(emulator: Emulator) -> Any:
    return boto3.client(
        "braket",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
