"""quotaguard's own settings: a TOML file, overridden by the environment, overridden by flags.

Files, first found wins: ``./quotaguard.toml``, then ``config.toml`` in the user config dir
(``~/.config/quotaguard``). Credentials are never read from the TOML file: IBM's come from
the environment or qiskit-ibm-runtime's saved account, AWS's from botocore's chain.

```toml
[ledger]
path = "~/.local/state/quotaguard/ledger.sqlite3"   # or url = "redis://host:6379/0"

[guard]
fail_mode = "closed"
state_ttl_seconds = 60

[ibm]
service_crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/...::"
region = "us-east"
price_per_second = "1.60"
plan = "open"   # or "pay-as-you-go", "flex", "premium": when IBM's answers cannot tell it

[braket]
region = "us-east-1"

[alerts]
levels = [80, 95]   # percents of each provider budget (ibm:..., braket:...) that raise an alert
```
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from quotaguard.engine.model import check_alert_levels
from quotaguard.errors import InvalidInput
from quotaguard.ibm.plans import Plan, check_plan

__all__ = ["Settings", "config_paths", "load_settings"]

# (section, key) -> environment variable
ENV = {
    ("ledger", "path"): "QUOTAGUARD_LEDGER_PATH",
    ("ledger", "url"): "QUOTAGUARD_LEDGER_URL",
    ("guard", "fail_mode"): "QUOTAGUARD_FAIL_MODE",
    ("guard", "state_ttl_seconds"): "QUOTAGUARD_STATE_TTL_SECONDS",
    ("ibm", "service_crn"): "QUOTAGUARD_IBM_SERVICE_CRN",
    ("ibm", "region"): "QUOTAGUARD_IBM_REGION",
    ("ibm", "base_url"): "QUOTAGUARD_IBM_URL",
    ("ibm", "iam_url"): "IAM_URL",
    ("ibm", "price_per_second"): "QUOTAGUARD_IBM_PRICE_PER_SECOND",
    ("ibm", "plan"): "QUOTAGUARD_IBM_PLAN",
    ("braket", "region"): "AWS_REGION",
    ("braket", "endpoint_url"): "AWS_ENDPOINT_URL_BRAKET",
    ("alerts", "levels"): "QUOTAGUARD_ALERT_LEVELS",  # "80,95"
}


# What each file setting may hold; anything else in the file is an error, not a silent default.
TYPES: dict[tuple[str, str], tuple[type, ...]] = {
    key: (str,) for key in ENV if key != ("guard", "state_ttl_seconds")
} | {
    ("guard", "state_ttl_seconds"): (int, float, str),
    ("ibm", "price_per_second"): (str, int, float),
    ("alerts", "levels"): (list,),
}
_TYPE_NAMES = {str: "a string", int: "a number", float: "a number", list: "a list"}
# Key fragments that look like a credential someone meant to put here.
_SECRETS = ("key", "token", "secret", "password", "passwd", "credential", "apikey")
_WHERE_CREDENTIALS = {
    "ibm": "set IBMCLOUD_API_KEY (or save a qiskit-ibm-runtime account)",
    "braket": "use the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, AWS_PROFILE)",
}


def _check_file(data: Mapping[str, object]) -> None:
    """Unknown sections or keys, credentials and wrong types fail before anything is opened."""
    known = [f"{s}.{k}" for s, k in TYPES]
    for section, values in data.items():
        if not isinstance(values, dict):
            raise InvalidInput(
                section,
                "unknown setting (settings go in [ledger], [guard], [ibm], [braket] or [alerts] "
                "sections)",
            )
        for key, value in values.items():
            dotted = f"{section}.{key}"
            allowed = TYPES.get((section, key))
            secretish = any(word in key.lower() for word in _SECRETS)
            if allowed is None and secretish and section == "ledger":
                raise InvalidInput(
                    dotted,
                    "unknown setting; a Redis password goes in ledger.url (redis://:pw@host)",
                )
            if allowed is None and secretish:
                where = _WHERE_CREDENTIALS.get(
                    section, "set IBMCLOUD_API_KEY / use the AWS chain for Braket"
                )
                raise InvalidInput(
                    dotted, f"credentials are never read from the config file; {where}"
                )
            if allowed is None:
                near = difflib.get_close_matches(dotted, known, n=1, cutoff=0.6)
                hint = ""
                if near:
                    same = near[0].startswith(f"{section}.")
                    hint = f" (did you mean {near[0].split('.', 1)[1] if same else near[0]}?)"
                raise InvalidInput(dotted, f"unknown setting{hint}")
            if isinstance(value, bool) or not isinstance(value, allowed):
                names = sorted({_TYPE_NAMES[t] for t in allowed})
                raise InvalidInput(
                    dotted, f"must be {' or '.join(names)}, got {type(value).__name__}"
                )


@attrs.frozen
class Settings:
    ledger_path: Path | None = None
    ledger_url: str | None = attrs.field(default=None, repr=False)  # may carry a password
    fail_mode: str = "closed"
    state_ttl_seconds: float = 60.0
    ibm_service_crn: str | None = None
    ibm_region: str | None = None  # None: the CRN's location
    ibm_base_url: str | None = None
    ibm_iam_url: str | None = None
    ibm_price_per_second: Decimal | None = None
    ibm_plan: Plan | None = None
    braket_region: str | None = None
    braket_endpoint_url: str | None = None
    #: Alert levels of the provider budgets (``ibm:...``, ``braket:...``), in percent.
    alert_levels: tuple[int, ...] = ()
    source: tuple[str, ...] = ()


def config_paths(cwd: Path | None = None) -> list[Path]:
    here = cwd or Path.cwd()
    return [
        here / "quotaguard.toml",
        Path(platformdirs.user_config_dir("quotaguard")) / "config.toml",
    ]


def _read_file(paths: list[Path]) -> tuple[dict[str, Any], str | None]:
    for path in paths:
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    return tomllib.load(fh), str(path)
            except tomllib.TOMLDecodeError as exc:
                raise InvalidInput(str(path), f"not valid TOML: {exc}") from None
    return {}, None


def load_settings(
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    flags: Mapping[str, object] | None = None,
    path: Path | None = None,
) -> Settings:
    """Merge file < environment < flags (``flags`` keys are ``"section.key"``)."""
    environ = os.environ if env is None else env
    data, source = _read_file([path] if path else config_paths(cwd))
    _check_file(data)
    merged: dict[tuple[str, str], object] = {}
    for section, values in data.items():
        if isinstance(values, dict):
            for key, value in values.items():
                merged[(section, key)] = value
    for (section, key), var in ENV.items():
        if environ.get(var):
            merged[(section, key)] = environ[var]
    for dotted, value in (flags or {}).items():
        if value is not None:
            section, _, key = dotted.partition(".")
            merged[(section, key)] = value
    return _build(merged, source)


def _build(m: Mapping[tuple[str, str], object], source: str | None) -> Settings:
    def text(section: str, key: str) -> str | None:
        value = m.get((section, key))
        return None if value is None else str(value)

    fail_mode = text("guard", "fail_mode") or "closed"
    if fail_mode not in ("closed", "open"):
        raise InvalidInput("guard.fail_mode", f"must be 'closed' or 'open', got {fail_mode!r}")
    ttl_text = text("guard", "state_ttl_seconds") or "60"
    try:
        ttl = float(ttl_text)
    except ValueError:
        raise InvalidInput("guard.state_ttl_seconds", f"not a number: {ttl_text!r}") from None
    if not ttl > 0:
        raise InvalidInput("guard.state_ttl_seconds", "must be positive")
    price_text = text("ibm", "price_per_second")
    price = None
    if price_text is not None:
        try:
            price = Decimal(price_text)
        except InvalidOperation:
            raise InvalidInput("ibm.price_per_second", f"not a number: {price_text!r}") from None
    ledger_path = text("ledger", "path")
    plan = check_plan(text("ibm", "plan"), "ibm.plan")
    return Settings(
        ledger_path=Path(ledger_path).expanduser() if ledger_path else None,
        ledger_url=text("ledger", "url"),
        fail_mode=fail_mode,
        state_ttl_seconds=ttl,
        ibm_service_crn=text("ibm", "service_crn"),
        ibm_region=text("ibm", "region"),
        ibm_base_url=text("ibm", "base_url"),
        ibm_iam_url=text("ibm", "iam_url"),
        ibm_price_per_second=price,
        ibm_plan=plan,
        braket_region=text("braket", "region"),
        braket_endpoint_url=text("braket", "endpoint_url"),
        alert_levels=_levels(m.get(("alerts", "levels"))),
        source=(source,) if source else (),
    )


def _levels(value: object) -> tuple[int, ...]:
    """``[80, 95]`` from the file, or ``"80,95"`` from the environment."""
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            value = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise InvalidInput(
                "alerts.levels", f"must be whole percents separated by commas, got {value!r}"
            ) from None
    return check_alert_levels(value, "alerts.levels")
