"""Serving the emulator as a process: ``serve()`` and ``python -m quotaguard.testing``, which
need no part of the ``quotaguard`` command."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import subprocess
import sys

import aiohttp
import pytest

from quotaguard.testing import serve

MODULE = [sys.executable, "-m", "quotaguard.testing"]
PROG = "python -m quotaguard.testing"


async def _start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *MODULE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:  # never leave the emulator running past the test
        proc.kill()
        await proc.wait()


async def _token(url: str, api_key: str) -> int:
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": api_key}
    async with (
        aiohttp.ClientSession(trust_env=False) as http,
        http.post(f"{url}/identity/token", data=form) as resp,
    ):
        return resp.status


async def test_python_m_serves_the_seeded_emulator_until_sigint() -> None:
    proc = await _start("--port", "0")
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(30):
            while not lines or not lines[-1].startswith("export AWS_SECRET_ACCESS_KEY"):
                lines.append((await proc.stdout.readline()).decode().rstrip("\n"))
        first = lines[0]
        assert first.startswith("quotaguard emulator on http://127.0.0.1:")
        assert first.endswith(" (Ctrl-C to stop)")
        url = first.split()[3]
        assert lines[1:3] == ["", "# point clients at it:"]
        env = dict(line.removeprefix("export ").split("=", 1) for line in lines[3:])
        assert env["AWS_ENDPOINT_URL_BRAKET"] == url
        assert await _token(url, env["IBMCLOUD_API_KEY"]) == 200
        assert await _token(url, "not-the-key") == 400

        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
        assert proc.stderr is not None
        assert await proc.stderr.read() == b""  # no traceback on the way out
    finally:
        await _stop(proc)


async def test_no_seed_announces_only_the_url_and_sigterm_stops_it() -> None:
    proc = await _start("--no-seed")
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            first = (await proc.stdout.readline()).decode()
        assert first.startswith("quotaguard emulator on http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest, _ = await proc.communicate()
        assert (proc.returncode, rest) == (0, b"")
    finally:
        await _stop(proc)


async def test_a_busy_port_or_a_bad_host_is_one_line_and_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await _start("--port", str(port))
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    assert (proc.returncode, out) == (2, b"")
    assert err.decode() == f"{PROG}: --port: 127.0.0.1:{port} is already in use\n"

    proc = await _start("--host", "999.1.1.1")
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert (proc.returncode, out) == (2, b"")
    assert err.decode().startswith(f"{PROG}: --host: cannot listen on '999.1.1.1'")
    assert err.decode().count("\n") == 1


def test_a_port_out_of_range_is_a_usage_error() -> None:
    done = subprocess.run([*MODULE, "--port", "70000"], capture_output=True, timeout=60)
    assert done.returncode == 2
    assert b"'70000' is not a port (0-65535)" in done.stderr


def test_the_emulator_needs_no_part_of_the_command() -> None:
    # Fresh interpreters: this test session may well have imported quotaguard.cli already.
    check = (
        "import sys, quotaguard.testing\n"
        "loaded = [m for m in sys.modules if m.split('.')[:2] == ['quotaguard', 'cli']]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    # -X importtime lists on stderr every module the run imports.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *MODULE[1:], "--help"], capture_output=True, timeout=60
    )
    assert done.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.decode().splitlines()}
    assert "quotaguard.testing.serve" in imported
    assert not {m for m in imported if m.split(".")[:2] == ["quotaguard", "cli"]}


async def test_serve_announces_once_and_closes_on_a_signal() -> None:
    said: list[str] = []
    listening = asyncio.Event()
    caught: list[int] = []
    # A handler of the caller's own (a test runner or coverage installs one): serve must hand
    # it back, not leave the default one behind.
    before = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))

    def announce(text: str) -> None:
        said.append(text)
        listening.set()

    task = asyncio.create_task(serve(port=0, announce=announce))
    async with asyncio.timeout(30):
        await listening.wait()
    url = said[0].split()[3]
    assert await _token(url, "demo-api-key") == 200
    os.kill(os.getpid(), signal.SIGTERM)  # caught by serve's handler, not by this process
    async with asyncio.timeout(30):
        await task
    assert len(said) == 1
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # the caller's handler is back
        assert caught == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)
    with pytest.raises(aiohttp.ClientConnectionError):
        await _token(url, "demo-api-key")


async def test_serve_raises_oserror_unchanged_when_it_cannot_listen() -> None:
    said: list[str] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError) as caught:
            await serve(port=port, announce=said.append)
    assert caught.value.errno == errno.EADDRINUSE
    assert said == []
