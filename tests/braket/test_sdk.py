"""The real Amazon Braket SDK reads the emulator's devices."""

from __future__ import annotations

import asyncio

import pytest

from quotaguard.testing import Emulator
from tests._support.braket import FORTE

pytestmark = pytest.mark.sdk


async def test_aws_device_parses_seeded_capabilities(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = pytest.importorskip("braket.aws")
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", emulator.url)
    session = aws.AwsSession(boto_session=boto3.Session(region_name="us-east-1"))
    device = await asyncio.to_thread(aws.AwsDevice, FORTE, session)
    assert device.name == "Forte-1" and device.status == "ONLINE"
    assert device.properties.service.shotsRange == (1, 100_000)
    assert emulator.calls("braket.GetDevice") >= 1
