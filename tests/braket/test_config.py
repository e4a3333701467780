"""Region, endpoint and retry settings come out as a stock ``boto3.client("braket")`` reads them
from the same environment and profile: the guard checks budgets where the user's SDK sends.

Each case builds a real boto3 client from the same settings and compares its
``meta.endpoint_url`` (and the URL it actually sends to) with ``BraketClient.endpoint``.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

import quotaguard
from quotaguard import InvalidInput, ProviderUnavailable, RetryPolicy
from quotaguard.braket import BraketClient
from quotaguard.testing import Emulator
from tests._support.braket import FORTE


def write_config(text: str) -> None:
    """The profile file of this test (``aws_isolated`` points AWS_CONFIG_FILE at it)."""
    Path(os.environ["AWS_CONFIG_FILE"]).write_text(textwrap.dedent(text), "utf-8")


def boto3_endpoint(region: str) -> str:
    """Where a stock boto3 client sends, checked two ways: its ``meta.endpoint_url`` and the
    URL of a real call (captured before it leaves, nothing sent)."""
    client = boto3.session.Session().client("braket", region_name=region)
    sent: list[str] = []

    def before_send(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.url)
        response = AWSResponse(request.url, 200, {}, None)
        response._content = b'{"deviceArn": "x"}'
        return response

    client.meta.events.register("before-send.braket", before_send)
    client.get_device(deviceArn=FORTE)
    assert sent and sent[0].startswith(client.meta.endpoint_url + "/device/")
    return client.meta.endpoint_url.rstrip("/")


def ours(region: str = "us-east-1", **kwargs: Any) -> BraketClient:
    return BraketClient(region, **kwargs)  # a fresh botocore session: reads this environment


# -- endpoint: one test per source -----------------------------------------------------------


def test_service_specific_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://global.example.com")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", "https://braket.example.com")
    assert ours().endpoint == boto3_endpoint("us-east-1") == "https://braket.example.com"


def test_profile_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("""
        [profile team]
        region = eu-north-1
        endpoint_url = https://profile.example.com
    """)
    monkeypatch.setenv("AWS_PROFILE", "team")
    assert ours().endpoint == boto3_endpoint("us-east-1") == "https://profile.example.com"


def test_services_section_outranks_the_profile_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("""
        [profile team]
        endpoint_url = https://profile.example.com
        services = ours
        [services ours]
        braket =
          endpoint_url = https://services.example.com
    """)
    monkeypatch.setenv("AWS_PROFILE", "team")
    assert ours().endpoint == boto3_endpoint("us-east-1") == "https://services.example.com"


def test_environment_outranks_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("""
        [default]
        endpoint_url = https://profile.example.com
    """)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://global.example.com")
    assert ours().endpoint == boto3_endpoint("us-east-1") == "https://global.example.com"


def test_configured_endpoints_can_be_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", "https://braket.example.com")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    expected = "https://braket.us-west-2.amazonaws.com"
    assert ours("us-west-2").endpoint == boto3_endpoint("us-west-2") == expected


@pytest.mark.parametrize(
    ("fips", "dualstack", "expected"),
    [
        ("true", None, "https://braket-fips.us-east-1.amazonaws.com"),
        (None, "true", "https://braket.us-east-1.api.aws"),
        ("true", "true", "https://braket-fips.us-east-1.api.aws"),
    ],
)
def test_fips_and_dual_stack_variables(
    monkeypatch: pytest.MonkeyPatch, fips: str | None, dualstack: str | None, expected: str
) -> None:
    for name, value in (("AWS_USE_FIPS_ENDPOINT", fips), ("AWS_USE_DUALSTACK_ENDPOINT", dualstack)):
        if value is not None:
            monkeypatch.setenv(name, value)
    assert ours().endpoint == boto3_endpoint("us-east-1") == expected


def test_fips_and_dual_stack_from_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("""
        [default]
        use_fips_endpoint = true
        use_dualstack_endpoint = true
    """)
    assert ours("us-west-2").endpoint == boto3_endpoint("us-west-2")
    assert ours("us-west-2").endpoint == "https://braket-fips.us-west-2.api.aws"


def test_a_given_endpoint_sets_fips_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    # As botocore does: FIPS and dual-stack apply to resolved endpoints, not to a given one.
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", "http://127.0.0.1:9")
    assert ours().endpoint == boto3_endpoint("us-east-1") == "http://127.0.0.1:9"


def test_china_partition() -> None:
    expected = "https://braket.cn-north-1.amazonaws.com.cn"
    assert ours("cn-north-1").endpoint == boto3_endpoint("cn-north-1") == expected


def test_session_client_config_counts() -> None:
    session = boto3.session.Session()
    session._session.set_default_client_config(Config(use_fips_endpoint=True))
    theirs = session.client("braket", region_name="us-east-1").meta.endpoint_url
    mine = BraketClient("us-east-1", botocore_session=session._session).endpoint
    assert mine == theirs == "https://braket-fips.us-east-1.amazonaws.com"


def test_a_configured_plain_http_endpoint_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("""
        [default]
        endpoint_url = http://braket.example.com
    """)
    with pytest.raises(InvalidInput, match="not HTTPS"):
        ours()


# -- region ----------------------------------------------------------------------------------


def test_botocore_region_outranks_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3 reads AWS_DEFAULT_REGION and never AWS_REGION: where both are set, boto3's answer.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    client = BraketClient()
    assert client.region == boto3.session.Session().region_name == "eu-north-1"
    assert client.endpoint == "https://braket.eu-north-1.amazonaws.com"


def test_profile_region(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("""
        [profile team]
        region = eu-west-2
    """)
    monkeypatch.setenv("AWS_PROFILE", "team")
    assert BraketClient().region == boto3.session.Session().region_name == "eu-west-2"


# -- retries ---------------------------------------------------------------------------------


@pytest.fixture
def testing_off() -> Any:
    """The suite's testing switch outranks AWS_MAX_ATTEMPTS (DESIGN.md); these tests need it off."""
    quotaguard.set_testing(False)
    yield
    quotaguard.set_testing(True)


async def test_aws_max_attempts_is_honoured(
    monkeypatch: pytest.MonkeyPatch, emulator: Emulator, testing_off: None
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    emulator.faults.add("braket.GetDevice", status=503, body="{}", times=5)
    async with BraketClient("us-east-1", endpoint_url=emulator.url) as client:
        with pytest.raises(ProviderUnavailable):
            await client.get_device(FORTE)
    theirs = boto3.session.Session().client("braket", region_name="us-east-1")
    assert emulator.calls("braket.GetDevice") == theirs.meta.config.retries["total_max_attempts"]


@pytest.mark.parametrize(
    ("profile", "attempts"),
    [
        ("retry_mode = legacy", 5),  # botocore's legacy default: 4 retries
        ("retry_mode = standard", 3),
        ("max_attempts = 7", 7),
        ("retry_mode = legacy\n        max_attempts = 2", 2),
    ],
)
def test_profile_retry_settings(testing_off: None, profile: str, attempts: int) -> None:
    write_config(f"""
        [default]
        {profile}
    """)
    assert ours()._http.retry == RetryPolicy(attempts=attempts)


def test_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    explicit = RetryPolicy(attempts=9)
    assert ours(retry=explicit)._http.retry == explicit  # an explicit policy wins
    client = ours()
    assert client._http.retry.attempts == RetryPolicy().attempts  # then the testing switch
    quotaguard.set_testing(False)
    try:
        assert client._http.retry == RetryPolicy(attempts=2)  # then the environment
        monkeypatch.delenv("AWS_MAX_ATTEMPTS")
        assert ours()._http.retry == RetryPolicy()  # then the default
    finally:
        quotaguard.set_testing(True)


def test_adaptive_retries_as_standard_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, testing_off: None
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    with pytest.warns(UserWarning, match="adaptive"):
        client = ours()
    assert client._http.retry == RetryPolicy(attempts=3)


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("AWS_MAX_ATTEMPTS", "lots", "AWS_MAX_ATTEMPTS"),
        ("AWS_MAX_ATTEMPTS", "0", "AWS_MAX_ATTEMPTS"),
        ("AWS_RETRY_MODE", "eager", "AWS_RETRY_MODE"),
    ],
)
def test_bad_retry_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInput) as info:
        ours()
    assert info.value.field == field
