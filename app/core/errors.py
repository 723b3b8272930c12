"""Typed errors whose message is written for the person using Starpad.

Every failure that a user can cause (a wrong file, too little memory, a broken download)
surfaces as one of these, so the CLI can print one clear line and the GUI a clear dialog,
instead of a traceback or — worse — llama.cpp aborting the whole process.
"""

from __future__ import annotations


class StarpadError(Exception):
    """Base class: ``str(error)`` is a complete sentence for a person."""


class ModelFileError(StarpadError):
    """The file is not a GGUF model we can load (checked before llama.cpp sees it)."""


class NotGGUFError(ModelFileError):
    """The file is not GGUF at all (text, an archive, random bytes, empty)."""


class TruncatedModelError(ModelFileError):
    """The file ends before the data its header describes (an interrupted copy/download)."""


class CorruptModelError(ModelFileError):
    """The header is internally inconsistent."""


class UnsupportedModelError(ModelFileError):
    """A valid GGUF, but not a model Starpad can complete code with."""


class ModelLoadError(StarpadError):
    """llama.cpp refused the model or its context (often: not enough memory)."""


class NoModelError(StarpadError):
    """An operation needs a loaded model and there is none."""


class CancelledError(StarpadError):
    """The operation was cancelled by the user (or superseded by a newer request)."""
