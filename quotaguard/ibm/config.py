"""Where the IBM client finds its settings, as Qiskit users already have them.

Order, first found wins, per setting:

1. explicit arguments;
2. the environment: ``IBMCLOUD_API_KEY`` (the IBM Cloud CLI's name) or ``QISKIT_IBM_TOKEN``;
   ``QUOTAGUARD_IBM_SERVICE_CRN`` or ``QISKIT_IBM_INSTANCE``; ``QUOTAGUARD_IBM_URL`` or
   ``QISKIT_IBM_URL``; ``IAM_URL``
   (read by qiskit-ibm-runtime too);
3. the account saved by ``QiskitRuntimeService.save_account`` in ``~/.qiskit/qiskit-ibm.json``
   (``QISKIT_IBM_CONFIG`` or ``path=`` for another file): the named account, else the one
   marked ``is_default_account``, else ``default-ibm-quantum-platform`` / ``default-ibm-cloud``
   / ``default``, else the only one.
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
_DEFAULT_NAMES = ("default-ibm-quantum-platform", "default-ibm-cloud", "default")


@attrs.frozen
class IBMSettings:
    api_key: Secret = attrs.field(repr=False)
    service_crn: str
    base_url: str | None = None
    iam_url: str | None = None
    source: str = "arguments"


def default_account_path(env: Mapping[str, str] = os.environ) -> Path:
    configured = env.get("QISKIT_IBM_CONFIG")
    return Path(configured) if configured else Path.home() / ".qiskit" / "qiskit-ibm.json"


def load_saved_account(path: Path, name: str | None = None) -> dict[str, Any] | None:
    """The saved qiskit-ibm-runtime account, or ``None`` when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if name is not None:
            raise InvalidInput(
                "name", f"no saved account {name!r}: {path} does not exist"
            ) from None
        return None
    try:
        accounts = json.loads(text)
    except ValueError:
        raise InvalidInput("path", f"{path} is not valid JSON") from None
    if not isinstance(accounts, dict):
        raise InvalidInput("path", f"{path} does not hold saved accounts")
    usable = {
        k: v
        for k, v in accounts.items()
        if isinstance(v, dict) and v.get("channel", "ibm_quantum_platform") in _CHANNELS
    }
    if name is not None:
        if name not in usable:
            raise InvalidInput(
                "name",
                f"no ibm_cloud/ibm_quantum_platform account named {name!r} in {path}; "
                f"saved: {sorted(usable)}",
            )
        return usable[name]
    for account in usable.values():
        if account.get("is_default_account"):
            return account
    for default in _DEFAULT_NAMES:
        if default in usable:
            return usable[default]
    if len(usable) == 1:
        return next(iter(usable.values()))
    return None


def _api_base_from_saved(url: str, crn: str | None) -> str:
    """qiskit-ibm-runtime's rule: an "experimental" URL is used as is (minus ``/v1``);
    ``https://cloud.ibm.com`` becomes ``https://[<region>.]quantum.cloud.ibm.com/api``."""
    if "experimental" in url:
        return url.rstrip("/").removesuffix("/v1")
    parts = urlsplit(url)
    region = crn.split(":")[5] if crn and len(crn.split(":")) > 5 else "us-east"
    prefix = "" if region in ("", "us-east") else f"{region}."
    host = parts.hostname or "cloud.ibm.com"
    if host.startswith("quantum.") or ".quantum." in host:
        return url.rstrip("/").removesuffix("/v1").removesuffix("/api") + "/api"
    return f"{parts.scheme or 'https'}://{prefix}quantum.{host}/api"


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
    source = "arguments"
    key: str | Secret | None = api_key or env.get("IBMCLOUD_API_KEY") or env.get("QISKIT_IBM_TOKEN")
    crn = service_crn or env.get("QUOTAGUARD_IBM_SERVICE_CRN") or env.get("QISKIT_IBM_INSTANCE")
    url = base_url or env.get("QUOTAGUARD_IBM_URL") or env.get("QISKIT_IBM_URL")
    iam = iam_url or env.get("IAM_URL")
    if api_key is None and key is not None:
        source = "environment"
    if key is None or crn is None or name is not None:
        file = Path(path) if path is not None else default_account_path(env)
        saved = load_saved_account(file, name)
        if saved is not None:
            if key is None and saved.get("token"):
                key, source = str(saved["token"]), f"saved account in {file}"
            if crn is None and saved.get("instance"):
                crn = str(saved["instance"])
            if url is None and saved.get("url"):
                url = _api_base_from_saved(str(saved["url"]), crn)
    if not key:
        raise InvalidInput(
            "api_key",
            "no IBM Cloud API key: pass api_key=, set IBMCLOUD_API_KEY (or QISKIT_IBM_TOKEN), "
            "or save an account with QiskitRuntimeService.save_account()",
        )
    if not crn:
        raise InvalidInput(
            "service_crn",
            "no Qiskit Runtime instance CRN: pass service_crn=, set QUOTAGUARD_IBM_SERVICE_CRN "
            "(or QISKIT_IBM_INSTANCE), or save an account with an instance",
        )
    secret = key if isinstance(key, Secret) else Secret(key)
    return IBMSettings(secret, crn, url, iam, source)


def region_base_url(region: str) -> str:
    try:
        return REGIONS[region]
    except KeyError:
        raise InvalidInput(
            "region", f"unknown region {region!r}; use one of {sorted(REGIONS)} or base_url="
        ) from None
