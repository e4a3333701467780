"""Moved to :mod:`tests._support.redis_server`; kept until the tests/ledger imports move."""

from tests._support.redis_server import *  # noqa: F403
from tests._support.redis_server import __all__  # noqa: F401
