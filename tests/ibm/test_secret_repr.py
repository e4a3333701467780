"""An API key wrapped in :class:`Secret` never shows itself: not in ``repr``, ``str``,
f-strings, ``format``, the repr of what holds it, nor a pickle."""

from __future__ import annotations

import logging
import pickle

import pytest

from quotaguard.ibm.auth import Secret
from quotaguard.ibm.config import resolve
from tests._support.secrets import IBM_TEST_API_KEY

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct:inst::"


def renderings(value: object) -> list[str]:
    return [
        repr(value),
        str(value),
        f"{value}",
        f"{value!r}",
        format(value, ""),
    ]


def test_a_secret_renders_masked_everywhere() -> None:
    secret = Secret(IBM_TEST_API_KEY)
    for text in renderings(secret) + renderings([secret]) + renderings({"api_key": secret}):
        assert IBM_TEST_API_KEY not in text
        assert "*" in text
    assert secret.reveal() == IBM_TEST_API_KEY


def test_a_secret_logged_stays_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "quotaguard.test")
    logging.getLogger("quotaguard.test").debug("key %s %r", Secret(IBM_TEST_API_KEY), [Secret("x")])
    assert IBM_TEST_API_KEY not in caplog.text
    assert "Secret('**********')" in caplog.text


def test_a_secret_is_not_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(IBM_TEST_API_KEY))


def test_settings_holding_a_secret_do_not_show_it() -> None:
    settings = resolve(api_key=IBM_TEST_API_KEY, service_crn=CRN, env={}, path=None)
    assert isinstance(settings.api_key, Secret)
    for text in renderings(settings) + renderings(settings.api_key):
        assert IBM_TEST_API_KEY not in text


def test_equal_secrets_compare_by_value_without_showing_it() -> None:
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert hash(Secret("a")) == hash(Secret("a"))
    assert repr(Secret("a")) == repr(Secret("b"))  # the mask says nothing about the value
