"""The region comes from the argument, then AWS_REGION (as the SDKs document), then botocore."""

from __future__ import annotations

import botocore.session
import pytest

from quotaguard import InvalidInput
from quotaguard.braket import BraketClient


async def test_aws_region_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    async with BraketClient(botocore_session=botocore.session.Session()) as client:
        assert client.region == "eu-north-1"
        assert client.endpoint == "https://braket.eu-north-1.amazonaws.com"
    async with BraketClient("us-west-2", botocore_session=botocore.session.Session()) as client:
        assert client.region == "us-west-2"


async def test_no_region_names_the_variable() -> None:
    # No AWS_REGION, AWS_DEFAULT_REGION or profile, and an empty config file (aws_isolated).
    with pytest.raises(InvalidInput, match="AWS_REGION"):
        BraketClient(botocore_session=botocore.session.Session())
