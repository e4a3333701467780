"""Account resolution, one source at a time: arguments, QISKIT_IBM_*, IBMCLOUD_API_KEY, and no
field of one source filling a gap in another (the saved-file source: test_config_saved.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quotaguard.errors import InvalidInput
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.ibm.config import resolve

CRN = "crn:v1:bluemix:public:quantum-computing:eu-de:a/acct-1:inst-1::"
CRN2 = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-1:inst-2::"
QISKIT = {"QISKIT_IBM_TOKEN": "q-tok", "QISKIT_IBM_INSTANCE": CRN2}
OURS = {"IBMCLOUD_API_KEY": "ic-key", "QUOTAGUARD_IBM_SERVICE_CRN": CRN}


def saved(tmp_path: Path, accounts: dict[str, dict[str, object]]) -> Path:
    path = tmp_path / "qiskit-ibm.json"
    path.write_text(json.dumps(accounts))
    return path


@pytest.fixture
def file_account(tmp_path: Path) -> Path:
    return saved(
        tmp_path,
        {"default": {"channel": "ibm_quantum_platform", "token": "f-tok", "instance": CRN}},
    )


def test_arguments_win_over_every_other_source(file_account: Path) -> None:
    settings = resolve(
        api_key="arg-key", service_crn=CRN2, env={**QISKIT, **OURS}, path=file_account
    )
    assert (settings.api_key.reveal(), settings.service_crn) == ("arg-key", CRN2)
    assert settings.source == "arguments"


def test_an_argument_key_takes_no_instance_from_elsewhere(file_account: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve(api_key="arg-key", env={**QISKIT, **OURS}, path=file_account)
    assert info.value.field == "service_crn"
    assert "pass service_crn= with api_key=" in str(info.value)


def test_a_name_argument_picks_the_saved_account_over_the_environment(tmp_path: Path) -> None:
    path = saved(
        tmp_path,
        {
            "default": {"channel": "ibm_quantum_platform", "token": "f-tok", "instance": CRN},
            "lab": {"channel": "ibm_cloud", "token": "lab-tok", "instance": CRN2},
        },
    )
    settings = resolve(name="lab", env={**QISKIT, **OURS}, path=path)
    assert (settings.api_key.reveal(), settings.service_crn) == ("lab-tok", CRN2)
    assert settings.source == f"saved account 'lab' in {path}"
    assert settings.channel == "ibm_cloud"
    with pytest.raises(InvalidInput) as both:
        resolve(api_key="k", service_crn=CRN, name="lab", env={}, path=path)
    assert both.value.field == "name"
    with pytest.raises(InvalidInput) as unknown:
        resolve(name="nope", env={}, path=path)
    assert "saved: ['default', 'lab']" in str(unknown.value)


def test_qiskit_variables_come_before_ibmcloud_api_key(file_account: Path) -> None:
    settings = resolve(env={**OURS, **QISKIT}, path=file_account)
    assert (settings.api_key.reveal(), settings.service_crn) == ("q-tok", CRN2)
    assert settings.source == "environment (QISKIT_IBM_TOKEN)"


def test_qiskit_url_and_channel_are_read_as_qiskit_reads_them(tmp_path: Path) -> None:
    env = {
        **QISKIT,
        "QISKIT_IBM_INSTANCE": CRN,  # eu-de
        "QISKIT_IBM_URL": "https://cloud.ibm.com",
        "QISKIT_IBM_CHANNEL": "ibm_cloud",
    }
    settings = resolve(env=env, path=tmp_path / "none")
    # default_runtime_url_resolver: the cloud URL becomes the instance region's API host
    assert settings.base_url == "https://eu-de.quantum.cloud.ibm.com/api"
    assert settings.channel == "ibm_cloud"
    with pytest.raises(InvalidInput) as bad:
        resolve(env={**QISKIT, "QISKIT_IBM_CHANNEL": "ibm_quantum"}, path=tmp_path / "none")
    assert bad.value.field == "QISKIT_IBM_CHANNEL"


def test_a_qiskit_token_takes_no_instance_from_other_sources(file_account: Path) -> None:
    env = {"QISKIT_IBM_TOKEN": "q-tok", "QUOTAGUARD_IBM_SERVICE_CRN": CRN2}
    with pytest.raises(InvalidInput) as info:
        resolve(env=env, path=file_account)
    assert info.value.field == "service_crn"
    assert "QISKIT_IBM_TOKEN is set without QISKIT_IBM_INSTANCE" in str(info.value)


def test_ibmcloud_api_key_with_our_crn(file_account: Path) -> None:
    env = {**OURS, "QUOTAGUARD_IBM_URL": "http://127.0.0.1:9/api", "QISKIT_IBM_INSTANCE": CRN2}
    settings = resolve(env=env, path=file_account)
    assert (settings.api_key.reveal(), settings.service_crn) == ("ic-key", CRN)
    assert settings.base_url == "http://127.0.0.1:9/api"
    assert settings.source == "environment (IBMCLOUD_API_KEY)"


def test_ibmcloud_api_key_takes_no_instance_from_the_saved_account(file_account: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve(env={"IBMCLOUD_API_KEY": "ic-key"}, path=file_account)
    assert info.value.field == "service_crn"
    assert "QUOTAGUARD_IBM_SERVICE_CRN" in str(info.value)


def test_an_explicit_instance_applies_to_the_account_found(file_account: Path) -> None:
    # as QiskitRuntimeService(instance=...) sets account.instance on any account it finds
    settings = resolve(service_crn=CRN2, env={}, path=file_account)
    assert (settings.api_key.reveal(), settings.service_crn) == ("f-tok", CRN2)
    assert settings.base_url == "https://quantum.cloud.ibm.com/api"  # CRN2's region, us-east
    assert settings.source == f"saved account 'default' in {file_account}; instance from arguments"


def test_iam_url_is_read_for_every_account(file_account: Path) -> None:
    env = {"IAM_URL": "http://127.0.0.1:9"}
    assert resolve(env=env, path=file_account).iam_url == "http://127.0.0.1:9"
    assert resolve(env={**env, **OURS}, path=file_account).iam_url == "http://127.0.0.1:9"


def test_nothing_configured_names_every_source(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve(env={"QUOTAGUARD_IBM_SERVICE_CRN": CRN}, path=tmp_path / "none")
    assert info.value.field == "api_key"
    assert "IBMCLOUD_API_KEY" in str(info.value)
    assert "save_account" in str(info.value)
    assert not (tmp_path / "none").exists()  # reading creates no file (qiskit's read does)


def test_qiskit_ibm_config_is_not_a_variable_qiskit_reads(tmp_path: Path) -> None:
    other = saved(tmp_path, {"default": {"token": "t", "instance": CRN}})
    with pytest.raises(InvalidInput):
        resolve(env={"QISKIT_IBM_CONFIG": str(other)}, path=tmp_path / "none")


def test_bad_saved_file(tmp_path: Path) -> None:
    path = tmp_path / "qiskit-ibm.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInput) as info:
        resolve(env={}, path=path)
    assert "not valid JSON" in str(info.value)


async def test_from_config_builds_a_client_that_says_where_its_account_came_from(
    file_account: Path,
) -> None:
    client = IBMRuntimeClient.from_config(env=OURS, path=file_account, api_version="2026-01-01")
    async with client:
        assert client.service_crn == CRN
        assert client.api_version == "2026-01-01"
        assert client.base_url == "https://eu-de.quantum.cloud.ibm.com/api"
        assert client.account == "environment (IBMCLOUD_API_KEY)"
        assert "ic-key" not in repr(client)
