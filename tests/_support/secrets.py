"""The credentials the test suite uses, in one place.

Tests import their API keys, AWS secret keys and session tokens from here, so the
session-wide scan (:mod:`tests._support.secrets_plugin`) knows every value that must never
reach a log line or an exception's text. Add a secret here before a test uses it.
Every value is fake; none grants access to anything.
"""

from __future__ import annotations

__all__ = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_TEST_SECRET_KEY",
    "AWS_TEST_SESSION_TOKEN",
    "AWS_WRONG_SECRET_KEY",
    "GUARD_AWS_SECRET_KEY",
    "IBM_API_KEY",
    "IBM_TEST_API_KEY",
    "KNOWN_SECRETS",
    "REDIS_FAULTS_PASSWORD",
    "REDIS_PASSWORD",
    "REDIS_URL_PASSWORD",
    "URL_PASSWORD",
]

#: An IBM Cloud API key the reliability tests register with the emulator.
IBM_API_KEY = "qg-rel-apikey-5c0ffee-d1e7"
#: AWS credentials the reliability tests sign Braket requests with (the key id is not secret).
AWS_ACCESS_KEY_ID = "AKIDRELIABILITY"
AWS_SECRET_ACCESS_KEY = "rEl1abil1tySecretKey/0123456789abcdefXYZ"
AWS_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEReliabilitySessionTokenValue"
#: A Redis password put in ledger URLs to check it is never echoed.
REDIS_PASSWORD = "rel-redis-pw-93b1"

#: The IBM and AWS credentials of tests/ibm, tests/braket and tests/integrations.
IBM_TEST_API_KEY = "qg-test-apikey-7f3a9c1d2e"
AWS_TEST_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_TEST_SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLESESSIONTOKENvalue"
#: Redis URL passwords of tests/ledger.
REDIS_FAULTS_PASSWORD = "s3cret-redis-pw"
REDIS_URL_PASSWORD = "hunter2-secret"
#: A password put in URLs by tests/test_url_secrets.py.
URL_PASSWORD = "url-pass-7731"
#: The AWS secret key of tests/guard.
GUARD_AWS_SECRET_KEY = "test-secret-key"
#: A secret the emulator never registered (tests/braket/test_emulator_sigv4.py).
AWS_WRONG_SECRET_KEY = "wR0ngSecretKey/NotRegisteredWithTheEmulator"

#: Every secret value used anywhere in the suite.
KNOWN_SECRETS: list[str] = [
    IBM_API_KEY,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    REDIS_PASSWORD,
    IBM_TEST_API_KEY,
    AWS_TEST_SECRET_KEY,
    AWS_TEST_SESSION_TOKEN,
    REDIS_FAULTS_PASSWORD,
    REDIS_URL_PASSWORD,
    GUARD_AWS_SECRET_KEY,
    AWS_WRONG_SECRET_KEY,
    URL_PASSWORD,
    # tests/ibm/test_config.py saved-account token
    "secret-token-x",
    # tests/guard/test_guard_e2e.py AWS secret key
    "test-secret-key",
    # quotaguard/testing/seed.py: the demo world's API key (CLI and demo tests)
    "demo-api-key",
]
