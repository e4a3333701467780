"""Fixtures for driving the command: a clean environment, and the seeded emulator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quotaguard.testing import Emulator
from quotaguard.testing.seed import seed_demo


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """No credentials of the developer's own; ledger and config dirs in tmp; no COLUMNS."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "IBMCLOUD_", "QISKIT_", "QUOTAGUARD_", "IAM_", "COLUMNS"))
    }
    env.update(
        HOME=str(tmp_path),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        QUOTAGUARD_LEDGER_PATH=str(tmp_path / "ledger.sqlite3"),
        AWS_CONFIG_FILE=str(tmp_path / "nope"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "nope"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture
async def world(base_env: dict[str, str]):  # type: ignore[no-untyped-def]
    async with Emulator() as emu:
        seed = seed_demo(emu)
        yield emu, seed, {**base_env, **seed.environment(emu.url)}
