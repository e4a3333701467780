"""The ``quotaguard`` command. Nothing in the library imports this package."""

from quotaguard.cli.app import main

__all__ = ["main"]
