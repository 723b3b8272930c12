"""Turning a document, its caret and the settings into the engine's ``CompletionRequest``.

It used to live in the window; it is here so that the benchmark and the tests build
exactly the requests the window sends. The inputs are the exact document text (U+00A0
stays U+00A0), the caret, the file's path and the user's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.engine import CompletionRequest, SamplingParams
from app.core.fim import Layout, RepoFile
from app.core.repo import RepoLocation
from app.core.settings_schema import Settings

log = logging.getLogger("starpad.session")

#: Files offered as repository context: how many recent files, and how much of each.
MAX_CONTEXT_FILES = 10
MAX_CONTEXT_CHARS = 20_000


@dataclass(frozen=True)
class RequestSettings:
    """Everything about a request that is not the document. Hashable: it is part of the
    completion cache's key, since another layout or sampling gives another completion."""

    layout: Layout = Layout.SPM
    max_tokens: int = 64
    single_line: bool = False
    sampling: SamplingParams = SamplingParams()
    use_repo_context: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestSettings:
        return cls(
            layout=Layout(settings.layout),
            max_tokens=settings.max_tokens,
            single_line=settings.single_line,
            sampling=SamplingParams(temperature=settings.temperature, top_p=settings.top_p),
            use_repo_context=settings.use_repo_context,
        )


def recent_files_context(
    path: Path, repo: RepoLocation, recent_files: Sequence[str]
) -> tuple[RepoFile, ...]:
    """Recent files from the same folder stand in for "other open files" (read now, from disk)."""
    files = []
    for name in list(recent_files)[:MAX_CONTEXT_FILES]:
        other = Path(name)
        if other != path and other.parent == path.parent and other.is_file():
            try:
                files.append(RepoFile(repo.relative(other), other.read_text(encoding="utf-8")[:MAX_CONTEXT_CHARS]))
            except (OSError, UnicodeDecodeError):
                continue
    return tuple(files)


def build_request(
    text: str,
    caret: int,
    settings: RequestSettings,
    *,
    path: Path | None = None,
    repo: RepoLocation | None = None,
    recent_files: Sequence[str] = (),
    document: str | None = None,
) -> CompletionRequest:
    """The request for a completion at ``caret`` of ``text``.

    ``repo`` (``app.core.repo.locate(path)``) gives the path the model sees, relative to
    the repository root; with ``use_repo_context`` also the repository's name and recent
    files of the same folder. ``document`` keys the engine's per-document KV snapshot.
    """
    caret = max(0, min(caret, len(text)))
    use_repo = settings.use_repo_context and repo is not None and path is not None
    return CompletionRequest(
        prefix=text[:caret],
        suffix=text[caret:],
        layout=settings.layout,
        max_tokens=settings.max_tokens,
        single_line=settings.single_line,
        sampling=settings.sampling,
        path=repo.relative_path if repo is not None else None,
        repo_name=repo.name if use_repo and repo is not None else None,
        repo_files=recent_files_context(path, repo, recent_files) if use_repo and repo and path else (),
        document=document,
    )
