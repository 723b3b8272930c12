"""pyqtgraph, importable without Qt's OpenGL module.

pyqtgraph imports the ``PySide6.QtOpenGL`` binding when it starts, for GPU paths
(``PColorMeshItem``, ``GraphicsViewGLWidget``) that Starpad's charts never use. The
bundle leaves that binding out (8.5 MB of a 200 MB budget), so where it is missing an
empty stand-in module satisfies the import. Anything that really needed OpenGL would fail
with an AttributeError on first use, not silently.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types

log = logging.getLogger("starpad.plotting")

try:
    importlib.import_module("PySide6.QtOpenGL")
except ImportError:
    log.debug("PySide6.QtOpenGL not available: pyqtgraph runs without its OpenGL items")
    sys.modules["PySide6.QtOpenGL"] = types.ModuleType("PySide6.QtOpenGL")

import pyqtgraph as pg  # noqa: E402 - after the stand-in

__all__ = ["pg"]
