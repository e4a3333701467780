"""Config resolution: arguments, then the environment, then qiskit's saved account."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quotaguard.errors import InvalidInput
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.ibm.config import resolve

CRN = "crn:v1:bluemix:public:quantum-computing:eu-de:a/acct-1:inst-1::"
CRN2 = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-1:inst-2::"


def saved(tmp_path: Path, accounts: dict[str, dict[str, object]]) -> Path:
    path = tmp_path / "qiskit-ibm.json"
    path.write_text(json.dumps(accounts))
    return path


def test_arguments_win(tmp_path: Path) -> None:
    env = {"IBMCLOUD_API_KEY": "env-key", "QUOTAGUARD_IBM_SERVICE_CRN": CRN2}
    settings = resolve(api_key="arg-key", service_crn=CRN, env=env, path=tmp_path / "none")
    assert settings.api_key.reveal() == "arg-key"
    assert settings.service_crn == CRN


@pytest.mark.parametrize(
    ("env", "key", "crn"),
    [
        ({"IBMCLOUD_API_KEY": "a", "QUOTAGUARD_IBM_SERVICE_CRN": CRN}, "a", CRN),
        ({"QISKIT_IBM_TOKEN": "q", "QISKIT_IBM_INSTANCE": CRN2}, "q", CRN2),
        ({"IBMCLOUD_API_KEY": "a", "QISKIT_IBM_TOKEN": "q", "QISKIT_IBM_INSTANCE": CRN}, "a", CRN),
    ],
)
def test_environment(tmp_path: Path, env: dict[str, str], key: str, crn: str) -> None:
    settings = resolve(env=env, path=tmp_path / "none")
    assert (settings.api_key.reveal(), settings.service_crn) == (key, crn)
    assert settings.source == "environment"


def test_saved_default_account(tmp_path: Path) -> None:
    path = saved(
        tmp_path,
        {
            "other": {"channel": "ibm_cloud", "token": "t-other", "instance": CRN2},
            "mine": {
                "channel": "ibm_quantum_platform",
                "token": "t-mine",
                "instance": CRN,
                "url": "https://cloud.ibm.com",
                "is_default_account": True,
            },
            "legacy": {"channel": "ibm_quantum", "token": "t-legacy"},
        },
    )
    settings = resolve(env={}, path=path)
    assert settings.api_key.reveal() == "t-mine"
    assert settings.service_crn == CRN
    assert settings.base_url == "https://eu-de.quantum.cloud.ibm.com/api"  # from the CRN
    named = resolve(env={}, path=path, name="other")
    assert (named.api_key.reveal(), named.service_crn) == ("t-other", CRN2)
    with pytest.raises(InvalidInput) as info:
        resolve(env={}, path=path, name="legacy")
    assert info.value.field == "name"


def test_saved_default_name_and_experimental_url(tmp_path: Path) -> None:
    path = saved(
        tmp_path,
        {
            "default-ibm-quantum-platform": {
                "channel": "ibm_quantum_platform",
                "token": "t",
                "instance": CRN2,
                "url": "http://127.0.0.1:8123/experimental/api/v1",
            }
        },
    )
    settings = resolve(env={"IAM_URL": "http://127.0.0.1:8123"}, path=path)
    assert settings.base_url == "http://127.0.0.1:8123/experimental/api"
    assert settings.iam_url == "http://127.0.0.1:8123"


def test_env_key_with_saved_instance(tmp_path: Path) -> None:
    path = saved(tmp_path, {"default": {"token": "t-file", "instance": CRN}})
    settings = resolve(env={"IBMCLOUD_API_KEY": "k-env"}, path=path)
    assert (settings.api_key.reveal(), settings.service_crn) == ("k-env", CRN)


def test_missing_key_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve(env={"QUOTAGUARD_IBM_SERVICE_CRN": CRN}, path=tmp_path / "none")
    assert info.value.field == "api_key"
    assert "IBMCLOUD_API_KEY" in str(info.value)
    with pytest.raises(InvalidInput) as crn:
        resolve(env={"IBMCLOUD_API_KEY": "k"}, path=tmp_path / "none")
    assert crn.value.field == "service_crn"
    assert "QUOTAGUARD_IBM_SERVICE_CRN" in str(crn.value)


def test_bad_saved_file(tmp_path: Path) -> None:
    path = tmp_path / "qiskit-ibm.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInput):
        resolve(env={}, path=path)


async def test_from_config_builds_a_client(tmp_path: Path) -> None:
    path = saved(tmp_path, {"default": {"token": "secret-token-x", "instance": CRN}})
    client = IBMRuntimeClient.from_config(env={}, path=path, api_version="2026-01-01")
    async with client:
        assert client.service_crn == CRN
        assert client.api_version == "2026-01-01"
        assert client.base_url == "https://eu-de.quantum.cloud.ibm.com/api"
        assert "secret-token-x" not in repr(client)
