"""Secrets: the IAM tokens the emulator issues, our API key and AWS keys never reach logs,
repr() or exception text; and the session-wide scan really fails a run that leaks one.

The plugin (``secrets_plugin.py``) cannot know the tokens the emulator mints at run time, so
this test collects them from ``emu.ibm.tokens`` and checks DEBUG logs itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quotaguard import BudgetUnavailable, MemoryLedger, ProviderError
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.work import IBMJob
from tests._support.reliability import BACKEND, World
from tests._support.secrets import (
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    IBM_API_KEY,
    KNOWN_SECRETS,
)
from tests._support.secrets_plugin import exception_texts

ROOT = Path(__file__).resolve().parents[2]


async def test_issued_tokens_and_keys_never_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued: set[str] = set()
    texts: list[str] = []

    def collect() -> None:
        issued.update(world.emu.ibm.tokens)

    async with BudgetGuard(MemoryLedger(), ibm=world.ibm, clock=world.clock) as guard:
        sub = await guard.submit(
            IBMJob(BACKEND, 60), lambda: world.ibm.run_job("sampler", BACKEND, {})
        )
        collect()
        await world.ibm.get_instance()
        world.emu.ibm.revoke_tokens()  # the next call gets 401 and a second token
        await world.ibm.get_usage()
        collect()
        world.emu.ibm.complete_job(str(sub.external_id), 12)
        await guard.settle(sub)
        collect()
        # Errors: an unknown job, a refused API key, a server that is down.
        for failing in (
            world.ibm.get_job("no-such-job"),
            world.braket.get_device("arn:aws:braket:us-east-1::device/qpu/nope/none"),
        ):
            with pytest.raises(ProviderError) as info:
                await failing
            texts += exception_texts(info.value)
        world.emu.faults.add("ibm.get_usage", status=503, times=10)
        world.clock.advance(hours=1)
        with pytest.raises(BudgetUnavailable) as down:
            await guard.submit(IBMJob(BACKEND, 60), lambda: None)
        texts += exception_texts(down.value)
        collect()
        texts += [repr(guard), repr(world.ibm), repr(world.braket), repr(guard.adapters)]
    assert len(issued) >= 2  # a first token and the one after revocation
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records]
    secrets = [*issued, IBM_API_KEY, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, *KNOWN_SECRETS]
    leaks = [(s[:6], t[:120]) for t in texts for s in secrets if s in t]
    assert leaks == []
    assert any("quotaguard" in r.name for r in caplog.records)  # DEBUG logging was on


def test_session_scan_fails_a_run_that_leaks(tmp_path: Path) -> None:
    # A tiny suite of its own, run with the plugin: one test logs a known secret, one raises it.
    (tmp_path / "test_leak.py").write_text(
        "import logging\n"
        "from tests._support.secrets import IBM_API_KEY\n"
        "def test_logs():\n"
        "    logging.getLogger('app').debug('key is %s', IBM_API_KEY)\n"
        "def test_raises():\n"
        "    raise RuntimeError('token ' + IBM_API_KEY)\n"
        "def test_clean():\n"
        "    logging.getLogger('app').info('nothing to see')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests._support.secrets_plugin",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "secrets scan: 2 known secret(s) leaked" in out
    assert "test_leak.py::test_logs: log app DEBUG" in out
    assert "exception in test_leak.py::test_raises" in out
    report = [line for line in out.splitlines() if "test_leak.py::" in line and ": " in line]
    assert report and all(IBM_API_KEY not in line for line in report if "KNOWN_SECRETS" in line)
    assert sum("<KNOWN_SECRETS[0]>" in line for line in report) == 2  # named, never repeated


def test_clean_run_passes(tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests._support.secrets_plugin",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "secrets scan" not in proc.stdout
