"""The package version, from its installed metadata (one source: pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("repwidget")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
