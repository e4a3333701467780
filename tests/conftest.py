"""Fixtures of the whole suite: isolation from the developer's AWS settings, fast retries, a
controllable clock, the emulator on a free loopback port, real redis-servers and a proxy."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import quotaguard
from quotaguard.testing import Emulator, FakeClock
from tests._support.aws import ACCESS_KEY, SECRET_KEY
from tests._support.postgres_server import PostgresServer
from tests._support.redis_cluster import LocalCluster
from tests._support.redis_ledger import Proxy
from tests._support.redis_server import MISSING as REDIS_MISSING
from tests._support.redis_server import RedisServer

# Every Redis script refuses a key it touches without declaring it (as on Redis Cluster,
# where an undeclared key is invisible during a slot migration); worker processes inherit it.
os.environ["QUOTAGUARD_REDIS_CHECK_KEYS"] = "1"

# Session-wide scans: no secret from tests/_support/secrets.py in any log record or escaped
# exception; every rule code the library emits is registered (tests/_support/rule_codes.py).
pytest_plugins = ["tests._support.secrets_plugin", "tests._support.rule_codes"]

#: The developer's AWS settings no test may see: profile, endpoints, token, region, price list
#: and retry settings (botocore would read every one of them).
AWS_SETTINGS = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_BRAKET",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "BRAKET_PRICE_OFFERS_URL",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
)


@pytest.fixture(autouse=True)
def aws_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test sees the test key and nothing of the developer's AWS set-up: none of
    :data:`AWS_SETTINGS`, empty config and credentials files, no instance metadata. A test
    about missing credentials deletes them itself."""
    for name in AWS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    files = tmp_path / "aws"
    files.mkdir()
    for name, variable in (
        ("config", "AWS_CONFIG_FILE"),
        ("credentials", "AWS_SHARED_CREDENTIALS_FILE"),
    ):
        (files / name).touch()
        monkeypatch.setenv(variable, str(files / name))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    """Clients made without ``retry=`` wait zero seconds between their usual attempts; a test
    about attempts or delays passes its own RetryPolicy, which still wins."""
    quotaguard.set_testing(True)
    yield
    quotaguard.set_testing(False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[Emulator]:
    """The emulator on ``clock``, verifying Braket SigV4 signatures by the test key (the one
    in every test's environment); a test signing with another key registers it too."""
    async with Emulator(clock=clock) as emu:
        emu.braket.add_credentials(ACCESS_KEY, SECRET_KEY)
        yield emu


def _redis_server() -> RedisServer:
    # Fails, never skips, when redis-server is missing: the Redis ledger must be tested.
    if shutil.which("redis-server") is None:
        pytest.fail(f"redis-server is not on PATH; {REDIS_MISSING}", pytrace=False)
    return RedisServer()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session, on a free loopback port (never 6379)."""
    with _redis_server() as server:
        yield server


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own (no other test's keys), on a free loopback port."""
    with _redis_server() as server:
        yield server


def _local_cluster(base: Path) -> LocalCluster:
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is not on PATH; {REDIS_MISSING}", pytrace=False)
    return LocalCluster(base)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-master Redis Cluster for the session, on free loopback ports (and bus ports)."""
    with _local_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A 3-master Redis Cluster of this test's own (one it may restart nodes of)."""
    with _local_cluster(tmp_path / "cluster") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL cluster for the session, on a free loopback port (never 5432).

    Fails, never skips, when the server's binaries are missing; each test takes a schema
    of its own (tests/_support/ledger.py).
    """
    try:
        server = PostgresServer()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[Proxy]:
    """A TCP proxy in front of the session's redis-server that loses replies on demand."""
    async with Proxy(redis_server.port) as p:
        yield p
