"""The installed distribution's version, read from its metadata (one source: pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("quotaguard")
except PackageNotFoundError:  # a source tree that was never installed has no metadata
    __version__ = "0+unknown"
