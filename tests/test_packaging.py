"""Packaging metadata: version from metadata, licence file, Python classifiers, test floors."""

from __future__ import annotations

import importlib
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import quotaguard
import quotaguard._version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_is_the_installed_metadata() -> None:
    assert quotaguard.__version__ == importlib.metadata.version("quotaguard")
    assert quotaguard.__version__ == PYPROJECT["project"]["version"]


def test_version_without_metadata_is_a_valid_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    try:
        assert importlib.reload(quotaguard._version).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(quotaguard._version)


def test_licence_and_classifiers() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    pythons = {
        c for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3.")
    }
    assert pythons == {f"Programming Language :: Python :: 3.{m}" for m in (11, 12, 13)}
    assert "Documentation" in project["urls"]
    assert (ROOT / project["urls"]["Documentation"]).is_file()


def test_coverage_floor_has_the_tracer_api_numba_needs() -> None:
    # numba (through amazon-braket-default-simulator) subclasses coverage.types.Tracer at import
    # time when coverage is installed; 7.6.0 and older lack it, so `import numba` fails.
    (floor,) = [r for r in PYPROJECT["dependency-groups"]["test"] if r.startswith("coverage")]
    assert floor == "coverage[toml]>=7.6.1"
    import coverage.types

    assert hasattr(coverage.types, "Tracer")


def test_redis_floor_has_the_asyncio_api_the_ledger_uses() -> None:
    # 5.x ignores retry= on the asyncio pool (a lost reply is not retried) and 5.0.0 has no
    # aclose(); 6.0.0 passes the Redis ledger tests (`nox -s lowest` installs it).
    extra = PYPROJECT["project"]["optional-dependencies"]["redis"]
    assert "redis>=6.0" in extra
    redis_asyncio = pytest.importorskip("redis.asyncio")
    from redis.asyncio.retry import Retry

    assert callable(redis_asyncio.Redis.aclose)
    assert callable(redis_asyncio.BlockingConnectionPool.aclose)
    assert Retry is not None


def test_the_qiskit_extra_has_no_upper_bound() -> None:
    # An untested newer release installs; the integration judges it at wrap time (opt-in).
    (req,) = PYPROJECT["project"]["optional-dependencies"]["qiskit"]
    assert req == "qiskit-ibm-runtime>=0.50"
