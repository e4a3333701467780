"""A password in a URL never reaches an error message or a repr."""

from __future__ import annotations

import pytest

from quotaguard import InvalidInput
from quotaguard._http import check_endpoint
from quotaguard.cli.settings import load_settings
from tests._support.secrets import URL_PASSWORD as PASSWORD


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@example.com/api",
        f"https://user:{PASSWORD}@quantum.cloud.ibm.com/api",
        f"ftp://user:{PASSWORD}@example.com/",
        f"http://user:{PASSWORD}@127.0.0.1:8080/",
    ],
)
def test_endpoint_errors_never_echo_credentials(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_endpoint(url)
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)
    assert "credentials" in str(info.value)


def test_settings_repr_hides_the_ledger_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        env={"QUOTAGUARD_LEDGER_URL": f"redis://:{PASSWORD}@127.0.0.1:6379/0"}, cwd=tmp_path
    )
    assert settings.ledger_url is not None
    assert PASSWORD in settings.ledger_url
    assert PASSWORD not in repr(settings)
