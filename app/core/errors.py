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


class TextFileError(StarpadError):
    """A text file cannot be opened or saved as asked; the editor's text is untouched."""


class BinaryFileError(TextFileError):
    """The file holds binary data (NUL bytes outside UTF-16/32), not text."""


class FileTooLargeError(TextFileError):
    """The file is larger than the editor is willing to hold."""


class NotARegularFileError(TextFileError):
    """A directory, device or pipe where a regular file was expected."""


class UndecodableFileError(TextFileError):
    """The bytes are not valid in the chosen encoding, or would not survive a save unchanged."""


class UncertainEncodingError(TextFileError):
    """Not UTF-8, and the 8-bit encoding cannot be told for sure: the person chooses.

    ``candidates`` all decode the file and give its exact bytes back (``guess`` first);
    ``samples`` shows the first non-ASCII line decoded with each.
    """

    def __init__(self, message: str, *, guess: str, candidates: tuple[str, ...], samples: dict[str, str]) -> None:
        super().__init__(message)
        self.guess = guess
        self.candidates = candidates
        self.samples = samples


class UnencodableTextError(TextFileError):
    """The text has a character the file's encoding cannot store; nothing was written."""

    def __init__(self, message: str, *, encoding: str, char: str, line: int, column: int) -> None:
        super().__init__(message)
        self.encoding = encoding
        self.char = char
        self.line = line
        self.column = column


class ReadOnlyFileError(TextFileError):
    """The file is read-only; it is written only after the person agrees."""

    def __init__(self, message: str, *, path: object) -> None:
        super().__init__(message)
        self.path = path


class FileChangedOnDiskError(TextFileError):
    """Another program changed the file since Starpad read or wrote it; nothing was written."""

    def __init__(self, message: str, *, path: object) -> None:
        super().__init__(message)
        self.path = path
