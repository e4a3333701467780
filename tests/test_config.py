"""quotaguard's own settings: TOML file < environment < flags."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard import InvalidInput
from quotaguard.cli.settings import config_paths, load_settings

TOML = """
[ledger]
path = "~/ledgers/team.sqlite3"

[guard]
fail_mode = "open"
state_ttl_seconds = 30

[ibm]
service_crn = "crn:v1:from-file"
price_per_second = "1.60"

[braket]
region = "eu-north-1"
"""


def write(tmp_path: Path, text: str = TOML) -> Path:
    path = tmp_path / "quotaguard.toml"
    path.write_text(text)
    return path


def test_file_is_read_from_the_project_dir(tmp_path: Path) -> None:
    write(tmp_path)
    settings = load_settings(env={}, cwd=tmp_path)
    assert settings.fail_mode == "open"
    assert settings.state_ttl_seconds == 30
    assert settings.ibm_service_crn == "crn:v1:from-file"
    assert settings.ibm_price_per_second == Decimal("1.60")
    assert settings.braket_region == "eu-north-1"
    assert settings.ledger_path == Path("~/ledgers/team.sqlite3").expanduser()
    assert settings.source == (str(tmp_path / "quotaguard.toml"),)


def test_environment_overrides_file_and_flags_override_both(tmp_path: Path) -> None:
    write(tmp_path)
    env = {
        "QUOTAGUARD_FAIL_MODE": "closed",
        "AWS_REGION": "us-west-1",
        "QUOTAGUARD_IBM_SERVICE_CRN": "crn:v1:from-env",
    }
    settings = load_settings(env=env, cwd=tmp_path, flags={"ibm.service_crn": "crn:v1:flag"})
    assert settings.fail_mode == "closed"
    assert settings.braket_region == "us-west-1"
    assert settings.ibm_service_crn == "crn:v1:flag"


def test_no_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(env={}, cwd=tmp_path, path=tmp_path / "absent.toml")
    assert settings.fail_mode == "closed"
    assert settings.ledger_path is None
    assert settings.source == ()


def test_user_config_dir_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    paths = config_paths(tmp_path)
    assert paths[0] == tmp_path / "quotaguard.toml"
    assert paths[1] == tmp_path / "cfg" / "quotaguard" / "config.toml"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[guard]\nfail_mode = "sometimes"', "guard.fail_mode"),
        ('[guard]\nstate_ttl_seconds = "soon"', "guard.state_ttl_seconds"),
        ("[guard]\nstate_ttl_seconds = -1", "guard.state_ttl_seconds"),
        ('[ibm]\nprice_per_second = "cheap"', "ibm.price_per_second"),
        ("[ibm\nbroken", "quotaguard.toml"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_settings(env={}, cwd=tmp_path)
    assert field in info.value.field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[guard]\nfailmode = "open"', "guard.failmode: unknown setting (did you mean fail_mode?)"),
        ('[ledgr]\npath = "x"', "ledgr.path: unknown setting (did you mean ledger.path?)"),
        ('path = "x"', "path: unknown setting"),
        ("[ledger]\npath = 5", "ledger.path: must be a string, got int"),
        ("[guard]\nstate_ttl_seconds = true", "guard.state_ttl_seconds: must be a number"),
    ],
)
def test_unknown_or_mistyped_settings_are_errors(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_settings(env={}, cwd=tmp_path)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[ibm]\napi_key = "sekrit-value"', "IBMCLOUD_API_KEY"),
        ('[ibm]\ntoken = "sekrit-value"', "IBMCLOUD_API_KEY"),
        ('[braket]\naws_secret_access_key = "sekrit-value"', "AWS chain"),
    ],
)
def test_credentials_in_the_file_are_refused(tmp_path: Path, text: str, where: str) -> None:
    write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_settings(env={}, cwd=tmp_path)
    assert "credentials are never read from the config file" in str(info.value)
    assert where in str(info.value)
    assert "sekrit" not in str(info.value)


def test_the_ibm_plan_is_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    write(tmp_path, '[ibm]\nplan = "flex"')
    assert load_settings(env={}, cwd=tmp_path).ibm_plan == "flex"
    settings = load_settings(env={"QUOTAGUARD_IBM_PLAN": "open"}, cwd=tmp_path)
    assert settings.ibm_plan == "open"
    assert load_settings(env={}, cwd=tmp_path, path=tmp_path / "absent.toml").ibm_plan is None


@pytest.mark.parametrize("value", ['"lite"', '"Premium"', '"payg"'])
def test_an_unknown_ibm_plan_names_the_allowed_values(tmp_path: Path, value: str) -> None:
    write(tmp_path, f"[ibm]\nplan = {value}")
    with pytest.raises(InvalidInput) as info:
        load_settings(env={}, cwd=tmp_path)
    assert info.value.field == "ibm.plan"
    assert "'open', 'pay-as-you-go', 'flex', 'premium'" in str(info.value)


def test_alert_levels_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    write(tmp_path, "[alerts]\nlevels = [95, 80]\n")
    assert load_settings(env={}, cwd=tmp_path).alert_levels == (80, 95)
    env = {"QUOTAGUARD_ALERT_LEVELS": "50, 90"}
    assert load_settings(env=env, cwd=tmp_path).alert_levels == (50, 90)
    assert load_settings(env={}, cwd=tmp_path / "nowhere").alert_levels == ()


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[alerts]\nlevels = [0, 80]", {}, "alerts.levels: each level must be a whole percent"),
        ("[alerts]\nlevels = [80.5]", {}, "alerts.levels: each level must be a whole percent"),
        ('[alerts]\nlevels = "80"', {}, "alerts.levels: must be a list, got str"),
        ("[alerts]\nlevel = [80]", {}, "alerts.level: unknown setting (did you mean levels?)"),
        ("", {"QUOTAGUARD_ALERT_LEVELS": "80%"}, "alerts.levels: must be whole percents"),
    ],
)
def test_bad_alert_levels_name_the_setting(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_settings(env=env, cwd=tmp_path)
    assert str(info.value).startswith(message)
