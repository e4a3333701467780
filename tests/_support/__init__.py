"""What the tests share besides fixtures: constants, fakes and helper functions, a topic a module.

Test modules import from here, never from a conftest module; the conftest modules hold only
fixtures and pytest hooks. Spawned worker processes import :mod:`tests._support.workers` by
its module path, so it stays light (no pytest).
"""
