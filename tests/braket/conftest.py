"""Braket fixtures: our client and a stock boto3 client, both at the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest

from quotaguard.braket import BraketClient
from quotaguard.testing import Emulator
from tests._support.aws import ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, botocore_session


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
