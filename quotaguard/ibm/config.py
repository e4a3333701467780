"""Which IBM account the client uses, resolved as qiskit-ibm-runtime resolves it.

An account is taken whole from the first source that has one, never merged field by field:

1. explicit arguments: ``api_key=`` (with ``service_crn=``), or ``name=`` of a saved account;
2. ``QISKIT_IBM_TOKEN`` with ``QISKIT_IBM_INSTANCE``, ``QISKIT_IBM_URL`` and
   ``QISKIT_IBM_CHANNEL`` (qiskit-ibm-runtime 0.51 ``AccountManager._from_env_variables``);
3. ``IBMCLOUD_API_KEY`` with ``QUOTAGUARD_IBM_SERVICE_CRN`` (and ``QUOTAGUARD_IBM_URL``);
4. the account saved by ``QiskitRuntimeService.save_account`` in ``~/.qiskit/qiskit-ibm.json``
   (or ``path=``), picked as ``AccountManager.get`` picks it, honouring its ``channel``,
   ``url``, ``private_endpoint`` and ``proxies``.

A source that has a key but lacks a field (a token with no instance) is an error, not a reason
to borrow the field from the next source. Explicit ``service_crn=``/``base_url=``/``iam_url=``
still apply to whichever account is found, as ``QiskitRuntimeService(instance=...)`` applies
its ``instance`` to any account; ``IAM_URL`` is read for every account, as qiskit does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from quotaguard.errors import InvalidInput
from quotaguard.ibm.auth import Secret
from quotaguard.ibm.sansio import REGIONS

__all__ = [
    "IBMSettings",
    "default_account_path",
    "load_saved_account",
    "region_base_url",
    "resolve",
]

_CHANNELS = ("ibm_quantum_platform", "ibm_cloud")
_DEFAULT_CHANNEL = "ibm_quantum_platform"
_DEFAULT_NAME = {
    "ibm_quantum_platform": "default-ibm-quantum-platform",
    "ibm_cloud": "default-ibm-cloud",
}
_CLOUD_URL = "https://cloud.ibm.com"  # qiskit's Account.url default


@attrs.frozen
class IBMSettings:
    api_key: Secret = attrs.field(repr=False)
    service_crn: str
    base_url: str | None = None
    iam_url: str | None = None
    #: Which account, and where it came from: said by ``quotaguard status``.
    source: str = "arguments"
    channel: str = _DEFAULT_CHANNEL
    #: A saved account's ``proxies.urls`` (requests' mapping); may hold proxy credentials.
    proxies: Mapping[str, str] | None = attrs.field(default=None, repr=False)


def default_account_path() -> Path:
    """qiskit-ibm-runtime's account file (it reads no variable naming another one)."""
    return Path.home() / ".qiskit" / "qiskit-ibm.json"


def _read_accounts(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        accounts = json.loads(text)
    except ValueError:
        raise InvalidInput("path", f"{path} is not valid JSON") from None
    if not isinstance(accounts, dict) or not all(isinstance(v, dict) for v in accounts.values()):
        raise InvalidInput("path", f"{path} does not hold saved accounts")
    return accounts


def _pick(accounts: dict[str, Any], channel: str) -> str | None:
    """``AccountManager.get`` without a name: the account marked default (any channel); else,
    in ``channel``, the one marked default, the default name, the last one of that channel;
    else a default name of either channel."""
    for key, account in accounts.items():
        if account.get("is_default_account"):
            return key
    of_channel = [key for key, a in accounts.items() if a.get("channel") == channel]
    if _DEFAULT_NAME.get(channel) in of_channel:
        return _DEFAULT_NAME[channel]
    if of_channel:
        return of_channel[-1]
    return next((n for n in _DEFAULT_NAME.values() if n in accounts), None)


def load_saved_account(
    path: Path, name: str | None = None, channel: str = _DEFAULT_CHANNEL
) -> tuple[str, dict[str, Any]] | None:
    """The saved account qiskit-ibm-runtime would load (its name and fields), or ``None``
    when no name was asked for and none is saved."""
    accounts = _read_accounts(path)
    if name is not None:
        if accounts is None or name not in accounts:
            saved = sorted(accounts or ())
            raise InvalidInput("name", f"no saved account named {name!r} in {path}; saved: {saved}")
        return name, accounts[name]
    chosen = None if accounts is None else _pick(accounts, channel)
    return None if chosen is None or accounts is None else (chosen, accounts[chosen])


def _channel(value: object, field: str) -> str:
    channel = _DEFAULT_CHANNEL if value is None else value
    if channel not in _CHANNELS:
        raise InvalidInput(
            field,
            f"channel {channel!r} is not one the guard can use; expected one of {list(_CHANNELS)}"
            + (
                " (ibm_quantum was retired; save an ibm_quantum_platform account)"
                if channel == "ibm_quantum"
                else ""
            ),
        )
    return str(channel)


def _api_base(url: str, crn: str | None, private_endpoint: bool = False) -> str:
    """qiskit-ibm-runtime's ``default_runtime_url_resolver``: an "experimental" URL is used
    as is (minus ``/v1``); ``https://cloud.ibm.com`` becomes
    ``https://[private.][<region>.]quantum.cloud.ibm.com/api`` by the CRN's region."""
    if "experimental" in url:
        return url.rstrip("/").removesuffix("/v1")
    parts = urlsplit(url)
    region = crn.split(":")[5] if crn and len(crn.split(":")) > 5 else "us-east"
    host = parts.hostname or "cloud.ibm.com"
    scheme = parts.scheme or "https"
    if private_endpoint:
        return f"{scheme}://private.{region}.quantum.{host}/api"
    if host.startswith("quantum.") or ".quantum." in host:
        return url.rstrip("/").removesuffix("/v1").removesuffix("/api") + "/api"
    prefix = "" if region in ("", "us-east") else f"{region}."
    return f"{scheme}://{prefix}quantum.{host}/api"


def _iam(crn: str | None, private_endpoint: bool) -> str | None:
    """qiskit's ``CloudAuth``: ``https://[private.]iam[.test].cloud.ibm.com`` (``None``: ours)."""
    staging = crn is not None and crn.split(":")[2:3] == ["staging"]
    if not (private_endpoint or staging):
        return None
    host = "iam.test.cloud.ibm.com" if staging else "iam.cloud.ibm.com"
    return f"https://{'private.' if private_endpoint else ''}{host}"


def _proxies(value: object, where: str) -> Mapping[str, str] | None:
    """A saved ``ProxyConfiguration``: its ``urls`` go to every request; NTLM cannot."""
    if not value:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("proxies", f"{where}: proxies must be a mapping")
    if value.get("username_ntlm") or value.get("password_ntlm"):
        raise InvalidInput(
            "proxies",
            f"{where}: NTLM proxy authentication is not supported (aiohttp has none); "
            "put the credentials in the proxy URL or use HTTPS_PROXY",
        )
    urls = value.get("urls")
    if urls is None:
        return None
    if not isinstance(urls, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in urls.items()
    ):
        raise InvalidInput("proxies", f"{where}: proxies.urls must map protocol to proxy URL")
    return dict(urls)


@attrs.frozen
class _Found:
    key: str | Secret
    crn: str | None
    base_url: str | None  # an API base, used as is
    source: str
    missing_crn: str  # what to set when the account names no instance
    channel: str = _DEFAULT_CHANNEL
    private_endpoint: bool = False
    proxies: Mapping[str, str] | None = None
    cloud_url: str | None = None  # qiskit's ``url``: the API base follows the instance's region


def _from_saved(file: Path, name: str | None, env: Mapping[str, str]) -> _Found | None:
    preferred = _channel(env.get("QISKIT_IBM_CHANNEL") or None, "QISKIT_IBM_CHANNEL")
    found = load_saved_account(file, name, preferred)
    if found is None:
        return None
    account_name, saved = found
    where = f"saved account {account_name!r} in {file}"
    channel = _channel(saved.get("channel"), "channel")
    if not saved.get("token"):
        raise InvalidInput("api_key", f"{where} has no token")
    crn = str(saved["instance"]) if saved.get("instance") else None
    private = bool(saved.get("private_endpoint", False))
    return _Found(
        str(saved["token"]),
        crn,
        None,
        where,
        f"{where} has no instance: save it with instance=<CRN> or pass service_crn=",
        channel,
        private,
        _proxies(saved.get("proxies"), where),
        str(saved.get("url") or _CLOUD_URL),
    )


def _from_env(env: Mapping[str, str]) -> _Found | None:
    if token := env.get("QISKIT_IBM_TOKEN"):
        return _Found(
            token,
            env.get("QISKIT_IBM_INSTANCE") or None,
            None,
            "environment (QISKIT_IBM_TOKEN)",
            "QISKIT_IBM_TOKEN is set without QISKIT_IBM_INSTANCE: set it to the instance CRN",
            _channel(env.get("QISKIT_IBM_CHANNEL") or None, "QISKIT_IBM_CHANNEL"),
            cloud_url=env.get("QISKIT_IBM_URL") or None,
        )
    if key := env.get("IBMCLOUD_API_KEY"):
        return _Found(
            key,
            env.get("QUOTAGUARD_IBM_SERVICE_CRN") or None,
            env.get("QUOTAGUARD_IBM_URL") or None,
            "environment (IBMCLOUD_API_KEY)",
            "pass service_crn=, set QUOTAGUARD_IBM_SERVICE_CRN to the instance CRN "
            "(IBMCLOUD_API_KEY is set without it)",
        )
    return None


def resolve(
    *,
    api_key: str | Secret | None = None,
    service_crn: str | None = None,
    base_url: str | None = None,
    iam_url: str | None = None,
    name: str | None = None,
    env: Mapping[str, str] = os.environ,
    path: str | os.PathLike[str] | None = None,
) -> IBMSettings:
    """The one account to use (see the module docstring for the order)."""
    file = Path(path) if path is not None else default_account_path()
    found: _Found | None
    if api_key is not None and name is not None:
        raise InvalidInput("name", "pass api_key= or name=, not both: an account is taken whole")
    if api_key is not None:
        found = _Found(
            api_key, service_crn, base_url, "arguments", "pass service_crn= with api_key="
        )
    elif name is not None:
        found = _from_saved(file, name, env)
    else:
        found = _from_env(env) or _from_saved(file, None, env)
    if found is None or not found.key:
        raise InvalidInput(
            "api_key",
            "no IBM Cloud API key: pass api_key=, set IBMCLOUD_API_KEY (or QISKIT_IBM_TOKEN), "
            "or save an account with QiskitRuntimeService.save_account()",
        )
    crn = service_crn or found.crn
    if not crn:
        raise InvalidInput("service_crn", f"no Qiskit Runtime instance CRN: {found.missing_crn}")
    source = found.source
    # Say what the arguments changed, not what they repeated (the CLI passes its settings on).
    changed = (("instance", service_crn, found.crn), ("base_url", base_url, found.base_url))
    overridden = [field for field, given, had in changed if given and given != had]
    if overridden and found.source != "arguments":
        source += f"; {' and '.join(overridden)} from arguments"
    url = base_url or found.base_url
    if url is None and found.cloud_url is not None:
        url = _api_base(found.cloud_url, crn, found.private_endpoint)
    secret = found.key if isinstance(found.key, Secret) else Secret(found.key)
    iam = iam_url or env.get("IAM_URL") or _iam(crn, found.private_endpoint)
    return IBMSettings(secret, crn, url, iam, source, found.channel, found.proxies)


def region_base_url(region: str) -> str:
    try:
        return REGIONS[region]
    except KeyError:
        raise InvalidInput(
            "region", f"unknown region {region!r}; use one of {sorted(REGIONS)} or base_url="
        ) from None
