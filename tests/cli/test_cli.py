"""The ``quotaguard`` command, driven as a subprocess against the emulator."""

from __future__ import annotations

import asyncio
import json
import signal

from tests._support.cli import EXE, run


async def test_demo_json_shows_rules_and_no_server_overspend(base_env: dict[str, str]) -> None:
    code, out, err = await run("demo", "--json", env=base_env)
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] is True
    rules = {s["rule"] for s in data["submissions"] if not s["admitted"]}
    assert {"budget.remaining", "ibm.max_execution_time.unset"} <= rules
    admitted = [s for s in data["submissions"] if s["admitted"]]
    assert admitted
    assert data["settled"] == len(admitted)
    for server in data["server"]:
        assert server["within_limit"] is True
        assert float(server["used"]) <= float(server["limit"])
    budgets = {b["key"]: b for b in data["budgets"]}
    assert budgets["team:research"]["limit"] == "30"
    assert float(budgets["team:research"]["used"]) <= 30


async def test_demo_prints_tables_and_the_server_check(base_env: dict[str, str]) -> None:
    code, out, _ = await run("demo", env=base_env)
    assert code == 0
    assert "Submissions" in out
    assert "rejected" in out
    assert "ibm.max_execution_time.unset" in out
    assert "✓ server side, IBM instance" in out
    assert "✓ server side, Braket spending limit" in out


async def test_status_lists_provider_budgets(world) -> None:  # type: ignore[no-untyped-def]
    _, seed, env = world
    code, out, err = await run("status", "--json", env=env)
    assert code == 0, err
    data = json.loads(out)
    budgets = {b["key"]: b for b in data["budgets"]}
    assert budgets[f"ibm:{seed.service_crn}"]["limit"] == "600"
    assert budgets[f"braket:{seed.device_arn}"]["limit"] == "50"
    assert sorted(data["providers"]) == ["braket", "ibm"]
    code, out, _ = await run("status", env=env)
    assert code == 0
    assert "ibm:…instance-open" in out


async def test_status_shows_the_alert_levels_of_the_provider_budgets(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, seed, env = world
    project = tmp_path / "project"
    project.mkdir()
    (project / "quotaguard.toml").write_text("[alerts]\nlevels = [95, 80]\n")
    code, out, err = await run("status", "--json", env=env, cwd=project)
    assert code == 0, err
    budgets = {b["key"]: b for b in json.loads(out)["budgets"]}
    assert budgets[f"ibm:{seed.service_crn}"]["alert_levels"] == [80, 95]
    assert budgets[f"braket:{seed.device_arn}"]["alert_levels"] == [80, 95]
    code, out, err = await run("status", env={**env, "COLUMNS": "200"}, cwd=project)
    assert code == 0, err
    assert "alert levels: ibm:…instance-open 80%, 95%; braket:…Forte-1 80%, 95%" in out


async def test_status_counts_the_holds_in_doubt(world) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime
    from decimal import Decimal

    from quotaguard import Budget, Charge, SQLiteLedger, Unit

    _, _, env = world
    async with SQLiteLedger(env["QUOTAGUARD_LEDGER_PATH"]) as ledger:
        await ledger.put_budget(Budget("team:x", Unit.USD, Decimal(10)))
        now = datetime.now(UTC)
        held = [
            (await ledger.reserve([Charge("team:x", Decimal(1), Unit.USD)], now=now)).reservation
            for _ in range(2)
        ]
        assert held[0] is not None
        await ledger.mark_in_doubt(held[0].id, now=now)
    code, out, err = await run("status", env=env)
    assert code == 0, err
    assert "outstanding reservations: 2 (1 in doubt)" in out
    code, out, _ = await run("status", "--json", env=env)
    assert (json.loads(out)["outstanding"], json.loads(out)["in_doubt"]) == (2, 1)


async def test_check_ibm_admits_and_rejects(world) -> None:  # type: ignore[no-untyped-def]
    emu, seed, env = world
    code, out, _ = await run(
        "check", "ibm", "--backend", seed.backend, "--max-execution-time", "100", "--json", env=env
    )
    assert code == 0
    assert json.loads(out)["admitted"] is True
    code, out, _ = await run("check", "ibm", "--backend", seed.backend, "--json", env=env)
    assert code == 1
    (violation,) = json.loads(out)["violations"]
    assert violation["rule"] == "ibm.max_execution_time.unset"
    assert "max_execution_time" in violation["message"]
    assert emu.calls("ibm.create_job") == 0


async def test_check_braket_reserves_nothing(world) -> None:  # type: ignore[no-untyped-def]
    emu, seed, env = world
    code, out, _ = await run(
        "check", "braket", "--device", seed.device_arn, "--shots", "100", "--json", env=env
    )
    assert code == 0
    assert json.loads(out)["charges"][0]["amount"] == "8.30"
    code, out, _ = await run(
        "check", "braket", "--device", seed.device_arn, "--shots", "1000", env=env
    )
    assert code == 1
    assert "budget.remaining" in out
    assert emu.calls("braket.CreateQuantumTask") == 0
    code, out, _ = await run("status", "--json", env=env)
    held = [b for b in json.loads(out)["budgets"] if b["reserved"] != "0"]
    assert held == []


async def test_limits_set_list_delete(world) -> None:  # type: ignore[no-untyped-def]
    _, seed, env = world
    code, out, _ = await run("limits", "set", seed.device_arn, "75", env=env)
    assert code == 0
    assert "updated" in out
    code, out, _ = await run("limits", "list", "--json", env=env)
    (limit,) = json.loads(out)["spending_limits"]
    assert (limit["device"], limit["limit"]) == (seed.device_arn, "75")
    code, _, _ = await run("limits", "delete", seed.device_arn, env=env)
    assert code == 0
    code, out, _ = await run("limits", "list", "--json", env=env)
    assert json.loads(out)["spending_limits"] == []
    code, _, err = await run("limits", "delete", seed.device_arn, env=env)
    assert code == 2
    assert "no spending limit" in err


async def test_ibm_limit_show_set_clear(world) -> None:  # type: ignore[no-untyped-def]
    emu, seed, env = world
    code, out, _ = await run("ibm-limit", "show", "--json", env=env)
    assert code == 0
    shown = json.loads(out)
    assert (shown["limit_seconds"], shown["limit_source"]) == ("600", "usage_limit_seconds")
    assert emu.calls("ibm.get_instance") == 0
    # An instance whose usage reply omits the limit: it comes from /v1/instance, not "no limit".
    emu.ibm.instances[seed.service_crn].usage_reports_limit = False
    code, out, _ = await run("ibm-limit", "show", "--json", env=env)
    shown = json.loads(out)
    assert (shown["limit_seconds"], shown["limit_source"]) == ("600", "instance_limit_seconds")
    assert emu.calls("ibm.get_instance") == 1
    emu.ibm.instances[seed.service_crn].usage_reports_limit = True
    assert (await run("ibm-limit", "set", "500", env=env))[0] == 0
    assert emu.ibm.instances[seed.service_crn].limit_seconds == 500
    code, out, _ = await run("ibm-limit", "show", env=env)
    assert "0 s of 500 s" in out
    assert (await run("ibm-limit", "clear", env=env))[0] == 0
    assert emu.ibm.instances[seed.service_crn].limit_seconds is None
    code, out, _ = await run("ibm-limit", "show", "--json", env=env)
    shown = json.loads(out)
    # The open plan's allocation still binds, as IBM still enforces it (and the guard reads it).
    assert (shown["limit_seconds"], shown["limit_source"]) == ("600", "usage_allocation_seconds")


async def test_missing_credentials_name_the_variable(base_env: dict[str, str]) -> None:
    code, _out, err = await run(
        "check", "ibm", "--backend", "x", "--max-execution-time", "5", env=base_env
    )
    assert code == 2
    assert "IBMCLOUD_API_KEY" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


async def test_bad_input_is_a_usage_error(world) -> None:  # type: ignore[no-untyped-def]
    emu, _seed, env = world
    code, _, err = await run("check", "braket", "--device", "not-an-arn", "--shots", "5", env=env)
    assert code == 2
    assert "device_arn" in err
    code, _, err = await run("ibm-limit", "set", "0", env=env)
    assert code == 2
    assert emu.calls("ibm.update_instance_configuration") == 0


async def test_emulator_command_serves_until_interrupted(base_env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *EXE,
        "emulator",
        "--port",
        "0",
        env=base_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not any(line.startswith("export AWS_SECRET_ACCESS_KEY") for line in lines):
            lines.append((await proc.stdout.readline()).decode().strip())
    url = next(line.split("=", 1)[1] for line in lines if "AWS_ENDPOINT_URL_BRAKET" in line)
    env = {
        **base_env,
        **dict(
            line.removeprefix("export ").split("=", 1)
            for line in lines
            if line.startswith("export")
        ),
    }
    code, out, _ = await run("limits", "list", "--json", env=env)
    assert code == 0
    assert json.loads(out)["spending_limits"][0]["limit"] == "50"
    assert url.startswith("http://127.0.0.1:")
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(30):
        assert await proc.wait() == 0


async def test_status_and_check_tell_one_story_after_an_open_limit_is_cleared(world) -> None:  # type: ignore[no-untyped-def]
    emu, seed, env = world
    emu.ibm.instances[seed.service_crn].consumed_seconds = 300
    assert (await run("ibm-limit", "clear", env=env))[0] == 0
    args = ("check", "ibm", "--backend", seed.backend, "--max-execution-time", "400")
    code, out, _ = await run(*args, env=env)
    assert code == 1
    assert "300" in out, out
    code, out, _ = await run("status", env=env)
    assert code == 0
    assert "no limit on the server any more" not in out, out
    assert "300 s of 600 s" in out, out
    code, out, _ = await run("status", "--json", env=env)
    data = json.loads(out)
    assert (data["ibm"]["limit_seconds"], data["ibm"]["limit_source"]) == (
        "600",
        "usage_allocation_seconds",
    )
    on_server = {b["key"]: b["limit_on_server"] for b in data["budgets"]}
    assert on_server[f"ibm:{seed.service_crn}"] is True
