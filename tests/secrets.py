"""Moved to :mod:`tests._support.secrets`; kept until the tests/ledger imports move."""

from tests._support.secrets import *  # noqa: F403
from tests._support.secrets import __all__  # noqa: F401
