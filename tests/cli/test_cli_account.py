"""``quotaguard status`` says which IBM account it used and where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quotaguard.testing import Emulator
from quotaguard.testing.seed import seed_demo
from tests._support.cli import run

qiskit_ibm_runtime = pytest.importorskip("qiskit_ibm_runtime")


async def test_status_names_the_saved_account_it_used(base_env: dict[str, str]) -> None:
    async with Emulator() as emu:
        seed = seed_demo(emu)
        home = Path(base_env["HOME"])
        # save_account writes where the command will look: $HOME/.qiskit/qiskit-ibm.json
        qiskit_ibm_runtime.QiskitRuntimeService.save_account(
            token=seed.api_key,
            instance=seed.service_crn,
            url=f"{emu.url}/experimental/api/v1",
            filename=str(home / ".qiskit" / "qiskit-ibm.json"),
            name="lab",
            set_as_default=True,
        )
        env = {**base_env, "IAM_URL": emu.url}
        code, out, err = await run("status", env=env)
        assert code == 0, err
        where = home / ".qiskit" / "qiskit-ibm.json"
        assert f"IBM account: saved account 'lab' in {where}" in out
        assert f"IBM instance {seed.service_crn}" in out
        code, out, err = await run("status", "--json", env={**env, **seed.environment(emu.url)})
        assert code == 0, err
        assert json.loads(out)["ibm_account"] == "environment (IBMCLOUD_API_KEY)"
