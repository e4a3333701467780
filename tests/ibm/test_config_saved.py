"""The saved-account source: files written by the real ``QiskitRuntimeService.save_account``,
the account picked as qiskit-ibm-runtime's ``AccountManager.get`` picks it, and its channel,
url, private_endpoint and proxies honoured (the proxy on the wire, through a loopback proxy)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quotaguard.errors import InvalidInput, ProviderUnavailable
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.ibm.config import resolve

qiskit_ibm_runtime = pytest.importorskip("qiskit_ibm_runtime")
from qiskit_ibm_runtime import QiskitRuntimeService  # noqa: E402
from qiskit_ibm_runtime.accounts.management import AccountManager  # noqa: E402

CRN = "crn:v1:bluemix:public:quantum-computing:eu-de:a/acct-1:inst-1::"
CRN2 = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-1:inst-2::"


def save(path: Path, **kwargs: object) -> None:
    QiskitRuntimeService.save_account(filename=str(path), **kwargs)  # type: ignore[arg-type]


def test_the_default_saved_account(tmp_path: Path) -> None:
    path = tmp_path / "qiskit-ibm.json"
    save(path, token="t-other", instance=CRN2, channel="ibm_cloud", name="other")
    save(path, token="t-mine", instance=CRN, name="mine", set_as_default=True)
    settings = resolve(env={}, path=path)
    assert (settings.api_key.reveal(), settings.service_crn) == ("t-mine", CRN)
    assert settings.base_url == "https://eu-de.quantum.cloud.ibm.com/api"  # from the CRN
    assert settings.source == f"saved account 'mine' in {path}"
    named = resolve(name="other", env={}, path=path)
    assert (named.api_key.reveal(), named.channel) == ("t-other", "ibm_cloud")


# Files as save_account writes them; which one qiskit-ibm-runtime's own AccountManager.get
# loads is the answer each case checks against (with QISKIT_IBM_CHANNEL set or not).
SAVES: dict[str, list[dict[str, object]]] = {
    "one default-named": [{"token": "a"}],
    "named, no default": [{"token": "a", "name": "x"}, {"token": "b", "name": "y"}],
    "marked default wins": [
        {"token": "a", "name": "default-ibm-quantum-platform"},
        {"token": "b", "name": "z", "channel": "ibm_cloud", "set_as_default": True},
    ],
    "channel default name": [
        {"token": "a", "name": "p", "channel": "ibm_cloud"},
        {"token": "b", "channel": "ibm_cloud"},
        {"token": "c", "name": "q"},
    ],
    "only the other channel": [{"token": "a", "name": "p", "channel": "ibm_cloud"}],
}


@pytest.mark.parametrize("channel", [None, "ibm_cloud", "ibm_quantum_platform"])
@pytest.mark.parametrize("case", list(SAVES))
def test_the_account_qiskit_would_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, channel: str | None
) -> None:
    path = tmp_path / "qiskit-ibm.json"
    for kwargs in SAVES[case]:
        save(path, instance=CRN, **kwargs)
    for name in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(name, raising=False)
    env = {} if channel is None else {"QISKIT_IBM_CHANNEL": channel}
    if channel is not None:
        monkeypatch.setenv("QISKIT_IBM_CHANNEL", channel)
    try:
        expected = AccountManager.get(filename=str(path))
    except Exception:  # qiskit finds none: neither may we
        with pytest.raises(InvalidInput):
            resolve(env=env, path=path)
        return
    assert expected is not None
    settings = resolve(env=env, path=path)
    assert settings.api_key.reveal() == expected.token
    assert settings.channel == expected.channel


def test_legacy_channel_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "qiskit-ibm.json"
    path.write_text('{"old": {"channel": "ibm_quantum", "token": "t", "instance": "h/g/p"}}')
    with pytest.raises(InvalidInput) as info:
        resolve(name="old", env={}, path=path)
    assert info.value.field == "channel"
    assert "ibm_quantum was retired" in str(info.value)


def test_saved_experimental_url_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "qiskit-ibm.json"
    save(path, token="t", instance=CRN2, url="http://127.0.0.1:8123/experimental/api/v1")
    settings = resolve(env={"IAM_URL": "http://127.0.0.1:8123"}, path=path)
    assert settings.base_url == "http://127.0.0.1:8123/experimental/api"
    assert settings.iam_url == "http://127.0.0.1:8123"


def test_saved_private_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "qiskit-ibm.json"
    save(path, token="t", instance=CRN, private_endpoint=True)
    settings = resolve(env={}, path=path)
    # default_runtime_url_resolver and CloudAuth with private_endpoint=True
    assert settings.base_url == "https://private.eu-de.quantum.cloud.ibm.com/api"
    assert settings.iam_url == "https://private.iam.cloud.ibm.com"


def test_saved_ntlm_proxy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qiskit-ibm.json"
    proxies = {"urls": {"https": "http://p:1"}, "username_ntlm": "u", "password_ntlm": "pw"}
    save(path, token="t", instance=CRN, proxies=proxies)
    with pytest.raises(InvalidInput) as info:
        resolve(env={}, path=path)
    assert info.value.field == "proxies"
    assert "pw" not in str(info.value)


async def test_saved_proxies_carry_the_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())  # the request line a proxy gets
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "qiskit-ibm.json"
    save(path, token="t", instance=CRN, proxies={"urls": {"https": f"http://127.0.0.1:{port}"}})
    env = {"IAM_URL": "https://iam.invalid"}
    client = IBMRuntimeClient.from_config(env=env, path=path)
    try:
        with pytest.raises(ProviderUnavailable):
            await client.get_usage()
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert seen and seen[0].startswith(b"CONNECT iam.invalid:443 ")
