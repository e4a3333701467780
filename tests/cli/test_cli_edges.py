"""The command's edges from the docs review (issue 13 #5): missing extras, negative numbers,
hints in command-line terms, reading commands that create nothing, unknown devices.
Driven as subprocesses against the emulator."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from tests._support.cli import run
from tests._support.cli_lines import one_line
from tests._support.extras import without

# A library hint in Python terms ("pass region=", "pass api_key=, ..."): a command user cannot.
PYTHON_HINT = re.compile(r"\bpass \w+=")


async def test_a_redis_ledger_without_the_extra_is_one_line(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    env = without("redis", tmp_path, base_env)
    code, _, err = await run("--ledger", "redis://127.0.0.1:1/0", "status", env=env)
    assert code == 2
    line = one_line(err)
    assert line.startswith("quotaguard: RedisLedger needs the optional 'redis' dependencies")
    assert "pip install 'redis>=6.0' 'hiredis>=3.0'" in line


async def test_a_negative_instance_limit_reaches_the_range_check(world) -> None:  # type: ignore[no-untyped-def]
    emu, _, env = world
    code, _, err = await run("ibm-limit", "set", "-10", env=env)
    assert code == 2
    line = one_line(err)
    assert "Invalid value for 'SECONDS': -10 is not in the range 1<=x<=2147483647" in line
    assert "No such option" not in line
    assert emu.calls("ibm.update_instance_configuration") == 0


@pytest.mark.parametrize(
    ("args", "extra_env", "says"),
    [
        (
            ["ibm-limit", "show"],
            {},
            "quotaguard: api_key: no IBM Cloud API key: set IBMCLOUD_API_KEY",
        ),
        (
            ["ibm-limit", "show"],
            {"IBMCLOUD_API_KEY": "k"},
            "quotaguard: service_crn: no Qiskit Runtime instance CRN: set "
            "QUOTAGUARD_IBM_SERVICE_CRN or ibm.service_crn in quotaguard.toml",
        ),
        (
            ["ibm-limit", "show"],
            {
                "IBMCLOUD_API_KEY": "k",
                "QUOTAGUARD_IBM_SERVICE_CRN": "crn:v1:bluemix:public:quantum-computing:"
                "us-east:a/acct:inst::",
                "QUOTAGUARD_IBM_REGION": "mars",
            },
            "quotaguard: region: unknown region 'mars'; use one of ['eu-de', 'us-east'] "
            "(QUOTAGUARD_IBM_REGION or ibm.region), or set QUOTAGUARD_IBM_URL",
        ),
        (
            ["limits", "list"],
            {},
            "quotaguard: region: no AWS region; set AWS_REGION (or a region in your AWS "
            "profile) or braket.region in quotaguard.toml",
        ),
    ],
)
async def test_configuration_hints_speak_command_line(
    base_env: dict[str, str], args: list[str], extra_env: dict[str, str], says: str
) -> None:
    code, _, err = await run(*args, env={**base_env, **extra_env})
    assert code == 2
    line = one_line(err)
    assert line == says or line.startswith(says), line
    assert not PYTHON_HINT.search(line), line


async def test_the_ibm_region_setting_is_used(base_env: dict[str, str]) -> None:
    """``[ibm] region`` was read but never reached the client: a bad one went unnoticed."""
    env = {
        **base_env,
        "IBMCLOUD_API_KEY": "k",
        "QUOTAGUARD_IBM_SERVICE_CRN": "crn:v1:bluemix:public:quantum-computing:us-east:a/x:y::",
        "QUOTAGUARD_IBM_REGION": "mars",
    }
    code, _, err = await run("status", env=env)
    assert code == 2
    assert "unknown region 'mars'" in one_line(err)


async def test_reading_commands_create_no_ledger_and_no_directory(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, seed, env = world
    where = tmp_path / "nonexistent" / "dir" / "x.sqlite3"
    code, out, err = await run("--ledger", str(where), "status", env=env)
    assert code == 0, err
    assert f"no ledger yet at {where} (not created by status)" in " ".join(out.split())
    assert "providers: ibm, braket" in out
    assert not (tmp_path / "nonexistent").exists()

    # The default place (the state dir) is not created either, by status or check.
    env = {k: v for k, v in env.items() if k != "QUOTAGUARD_LEDGER_PATH"}
    state = Path(env["XDG_STATE_HOME"])
    for args in (
        ["status", "--json"],
        ["check", "ibm", "--backend", seed.backend, "--max-execution-time", "60"],
        ["check", "braket", "--device", seed.device_arn, "--shots", "10"],
    ):
        code, out, err = await run(*args, env=env)
        assert code == 0, (args, err)
        assert "ledger" not in err, args  # stderr may carry the price table's age, nothing more
        assert not state.exists(), args
        if args[0] == "status":
            assert json.loads(out)["ledger_missing"] == str(state / "quotaguard" / "ledger.sqlite3")


async def test_status_reads_an_existing_ledger(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, seed, env = world
    where = tmp_path / "ledger.sqlite3"
    # A writing command creates it; status then reads it and says nothing about its absence.
    code, _, err = await run("limits", "set", seed.device_arn, "40", env=env)
    assert code == 0, err
    from quotaguard.ledger.sqlite import SQLiteLedger

    async with SQLiteLedger(where) as ledger:
        assert await ledger.budgets() == []
    code, out, err = await run("--ledger", str(where), "status", env=env)
    assert (code, "no ledger yet" in out) == (0, False), err


async def test_limits_set_checks_the_device_first(world) -> None:  # type: ignore[no-untyped-def]
    emu, seed, env = world
    typo = seed.device_arn.replace("Forte-1", "Forte-2")
    code, _, err = await run("limits", "set", typo, "10", env=env)
    assert code == 2
    assert (
        one_line(err)
        == f"quotaguard: unknown device {typo}: Braket in us-east-1 has no such device"
    )
    assert emu.calls("braket.CreateSpendingLimit") == 0
    assert emu.calls("braket.UpdateSpendingLimit") == 0


async def test_limits_set_with_braket_unreachable_creates_nothing(world) -> None:  # type: ignore[no-untyped-def]
    emu, seed, env = world
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {**env, "AWS_ENDPOINT_URL_BRAKET": f"http://127.0.0.1:{port}"}
    code, _, err = await run("limits", "set", seed.device_arn, "10", env=env)
    assert code == 2
    line = one_line(err)
    assert f"127.0.0.1:{port}" in line or "connect" in line.lower(), line
    assert emu.calls("braket.CreateSpendingLimit") == 0
