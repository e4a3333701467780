"""Guard fixtures: the toy adapter of :mod:`tests._support.guard`."""

from __future__ import annotations

import pytest

from tests._support.guard import ToyAdapter


@pytest.fixture
def toy() -> ToyAdapter:
    return ToyAdapter()
