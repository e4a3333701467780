"""The AWS credentials of the suite's environment, and botocore sessions signing with them.

Every test starts with ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` set to :data:`ACCESS_KEY`
/ :data:`SECRET_KEY` (the autouse ``aws_isolated`` fixture), and the ``emulator`` fixture
verifies signatures by this key.
"""

from __future__ import annotations

import botocore.session

from tests._support.secrets import AWS_TEST_SECRET_KEY, AWS_TEST_SESSION_TOKEN

__all__ = ["ACCESS_KEY", "SECRET_KEY", "SESSION_TOKEN", "botocore_session"]

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = AWS_TEST_SECRET_KEY
SESSION_TOKEN = AWS_TEST_SESSION_TOKEN


def botocore_session(
    token: str | None = None, *, key: str = ACCESS_KEY, secret: str = SECRET_KEY
) -> botocore.session.Session:
    """A botocore session with these credentials set (never read from the environment)."""
    session = botocore.session.get_session()
    session.set_credentials(key, secret, token)
    return session
