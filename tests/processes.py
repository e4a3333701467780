"""Moved to :mod:`tests._support.processes`; kept until the tests/ledger imports move."""

from tests._support.processes import *  # noqa: F403
from tests._support.processes import __all__  # noqa: F401
