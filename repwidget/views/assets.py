"""The built front end (``js/`` bundled by esbuild into ``repwidget/static/``)."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"
#: the front end: every view's module, bundled
BUNDLE = STATIC / "widget.js"
