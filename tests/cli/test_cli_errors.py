"""The command's rough edges from the new-user review: one-line errors, narrow terminals,
config typos, stale provider budgets. Driven as subprocesses against the emulator."""

from __future__ import annotations

import json
import re
import socket
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Budget
from quotaguard.ledger.sqlite import SQLiteLedger
from tests._support.cli import run
from tests._support.cli_lines import one_line

ARIA = "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["ibm-limit", "set", "0"], "Invalid value for 'SECONDS': 0 is not in the range"),
        (
            ["check", "ibm", "--backend", "x", "--max-execution-time", "1.5"],
            "'1.5' is not a valid integer",
        ),
        (["status", "--bogus"], "No such option '--bogus'"),
        (["nope"], "No such command 'nope'"),
    ],
)
async def test_click_usage_errors_are_one_line(
    base_env: dict[str, str], args: list[str], text: str
) -> None:
    code, _, err = await run(*args, env=base_env)
    assert code == 2
    assert text in one_line(err)


async def test_help_and_version_still_exit_0(base_env: dict[str, str]) -> None:
    code, out, _ = await run("check", "ibm", "--help", env=base_env)
    assert (code, "--max-execution-time" in out) == (0, True)
    code, out, _ = await run("--version", env=base_env)
    assert (code, out.startswith("quotaguard, version")) == (0, True)


async def test_negative_limit_amount_reaches_the_amount_check(world) -> None:  # type: ignore[no-untyped-def]
    emu, seed, env = world
    code, _, err = await run("limits", "set", seed.device_arn, "-5", env=env)
    assert code == 2
    line = one_line(err)
    assert line.startswith("quotaguard: amount: amount '-5' must be a non-negative number")
    assert emu.calls("braket.UpdateSpendingLimit") == 0


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[ledger]\npath = 5\n", "quotaguard: ledger.path: must be a string, got int"),
        (
            '[guard]\nfailmode = "open"\n',
            "quotaguard: guard.failmode: unknown setting (did you mean fail_mode?)",
        ),
        (
            '[ibm]\napi_key = "k-123"\n',
            "quotaguard: ibm.api_key: credentials are never read from the config file",
        ),
    ],
)
async def test_config_file_mistakes_stop_the_command_and_write_nothing(
    base_env: dict[str, str], tmp_path: Path, toml: str, message: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "quotaguard.toml").write_text(toml)
    env = {k: v for k, v in base_env.items() if k != "QUOTAGUARD_LEDGER_PATH"}
    code, _, err = await run("status", env=env, cwd=project)
    assert code == 2
    assert one_line(err).startswith(message)
    assert sorted(p.name for p in project.iterdir()) == ["quotaguard.toml"]
    assert not (tmp_path / "state").exists()  # no default ledger either


async def test_a_bad_config_file_does_not_block_help_or_commands_that_do_not_read_it(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "quotaguard.toml").write_text("[ibm]\nx = 1\n")
    for args in (("status", "--help"), ("emulator", "--help"), ("--help",)):
        code, out, _ = await run(*args, env=base_env, cwd=tmp_path)
        assert code == 0, args
        assert "Usage:" in out
    code, _, err = await run("status", env=base_env, cwd=tmp_path)  # it reads settings
    assert code == 2
    assert one_line(err).startswith("quotaguard: ibm.x: unknown setting")


async def test_status_with_a_malformed_crn_fails_like_check_ibm(world) -> None:  # type: ignore[no-untyped-def]
    _, _, env = world
    env = {**env, "QUOTAGUARD_IBM_SERVICE_CRN": "garbage"}
    code, out, err = await run("status", "--json", env=env)
    assert (code, out) == (2, "")
    line = one_line(err)
    assert line.startswith("quotaguard: service_crn: expected the instance's IBM Cloud CRN")
    code, _, check_err = await run(
        "check", "ibm", "--backend", "x", "--max-execution-time", "5", env=env
    )
    assert (code, check_err) == (2, err)


async def test_status_refuses_a_half_configured_provider(world) -> None:  # type: ignore[no-untyped-def]
    _, _, env = world
    no_key = {k: v for k, v in env.items() if k != "IBMCLOUD_API_KEY"}  # a CRN, but no key
    code, out, err = await run("status", "--json", env=no_key)
    assert (code, out) == (2, "")
    assert "IBMCLOUD_API_KEY" in one_line(err)
    no_region = {k: v for k, v in env.items() if not k.startswith("AWS_") or k.endswith("_BRAKET")}
    code, out, err = await run("status", "--json", env=no_region)  # an endpoint, no region
    assert (code, out) == (2, "")
    assert "region" in one_line(err)


async def test_status_skips_a_provider_nobody_configured(world) -> None:  # type: ignore[no-untyped-def]
    _, _, env = world
    env = {k: v for k, v in env.items() if not k.startswith(("IBMCLOUD_", "QUOTAGUARD_IBM"))}
    code, out, err = await run("status", "--json", env=env)
    assert code == 0, err
    assert json.loads(out)["providers"] == ["braket"]


async def test_emulator_busy_port_and_bad_host_are_one_line(base_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = await run("emulator", "--port", str(port), env=base_env)
    assert code == 2
    assert one_line(err) == f"quotaguard: --port: 127.0.0.1:{port} is already in use"
    assert "export" not in out
    code, _, err = await run("emulator", "--host", "999.1.1.1", env=base_env)
    assert code == 2
    assert one_line(err).startswith("quotaguard: --host: cannot listen on '999.1.1.1'")


async def test_check_says_what_a_command_user_can_do(world) -> None:  # type: ignore[no-untyped-def]
    _, seed, env = world
    sv1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
    code, out, _ = await run("check", "braket", "--device", sv1, "--shots", "10", env=env)
    assert (code, out) == (0, "admitted: nothing to hold (no limit or budget applies)\n")

    typo = seed.device_arn.replace("Forte-1", "Forte-l")
    code, out, err = await run("check", "braket", "--device", typo, "--shots", "10", env=env)
    assert (code, out) == (2, "")
    # An unknown device has no built-in price, so no stale-price warning either: one line.
    line = one_line(err)
    assert line.startswith(f"quotaguard: --device: unknown device {typo}: no price known")
    assert "PriceTable" not in line

    async with SQLiteLedger(Path(env["QUOTAGUARD_LEDGER_PATH"])) as ledger:
        await ledger.put_budget(Budget("team:usd", Unit.USD, Decimal(100)))
    args = ["check", "ibm", "--backend", seed.backend, "--max-execution-time", "10"]
    code, _, err = await run(*args, "--budget", "team:usd", env=env)
    assert code == 2
    line = one_line(err)
    assert "set QUOTAGUARD_IBM_PRICE_PER_SECOND or ibm.price_per_second" in line
    assert "Decimal(" not in line
    code, out, _ = await run(
        *args, "--budget", "team:usd", env={**env, "QUOTAGUARD_IBM_PRICE_PER_SECOND": "1.60"}
    )
    assert code == 0
    assert "16.00 USD on team:usd" in out


async def test_status_at_80_columns_keeps_the_numbers_whole(world) -> None:  # type: ignore[no-untyped-def]
    _, seed, env = world
    assert (await run("limits", "set", seed.device_arn, "12345.67", env=env))[0] == 0
    code, out, err = await run("status", env={**env, "COLUMNS": "80"})
    assert code == 0, err
    table_lines = [line for line in out.splitlines() if not line.startswith("IBM instance")]
    assert max(len(line.rstrip()) for line in table_lines) <= 80
    assert re.search(r"Forte-1\s+\$12345\.67\s+\$0\s+\$0\s+\$12345\.67\s+always\s+[░]*\s+0%", out)
    assert re.search(r"ibm:…instance-open\s+s\s+600\s+0\s+0\s+600\s+0%", out), out
    assert re.search(r"braket:…Forte-1\s+USD\s+12345\.67\s+0\s+0\s+12345\.67\s+0%", out), out
    for header in ("limit", "used", "reserved", "remaining", "queued"):
        assert re.search(rf"\b{header}\b", out), header


async def test_status_marks_a_budget_whose_limit_was_deleted(world) -> None:  # type: ignore[no-untyped-def]
    _, _, env = world
    async with SQLiteLedger(env["QUOTAGUARD_LEDGER_PATH"]) as ledger:
        await ledger.budgets()  # the guard's ledger exists (status reads one, never creates one)
    assert (await run("limits", "set", ARIA, "20", env=env))[0] == 0
    assert (await run("status", env=env))[0] == 0  # syncs the Aria-1 budget into the ledger
    assert (await run("limits", "delete", ARIA, env=env))[0] == 0
    code, out, _ = await run("status", env=env)
    assert code == 0
    assert re.search(r"braket:…Aria-1 \*\s+USD\s+20\b", out), out
    assert re.search(r"braket:…Forte-1\s+USD", out), out
    assert "* no limit on the server any more; the guard no longer charges it" in out
    code, out, _ = await run("status", "--json", env=env)
    on_server = {b["key"]: b["limit_on_server"] for b in json.loads(out)["budgets"]}
    assert on_server[f"braket:{ARIA}"] is False
    assert set(on_server.values()) == {False, True}
