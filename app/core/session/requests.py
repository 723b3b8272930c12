"""Turning a document, its caret and the settings into the engine's ``CompletionRequest``.

It used to live in the window; it is here so that the benchmark and the tests build
exactly the requests the window sends. The inputs are the exact document text (U+00A0
stays U+00A0), the caret, the file's path, the user's settings and — with repository
context on — the block ``app.core.repo_context`` chose (the session keeps one per current
file and rebuilds it only when the set of relevant files changes, never per keystroke).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.engine import CompletionRequest, SamplingParams
from app.core.fim import Layout, PromptBudget, RepoFile
from app.core.repo import RepoLocation
from app.core.repo_context import ContextBlock, ContextInputs, CountTokens, RepoContext, estimate_tokens
from app.core.settings_schema import Settings

log = logging.getLogger("starpad.session")

#: Files offered as repository context: how many recent files, and how much of each.
MAX_CONTEXT_FILES = 10
MAX_CONTEXT_CHARS = 20_000
#: The context the budget is planned for when the settings do not say (Settings' default).
DEFAULT_N_CTX = 16384


@dataclass(frozen=True)
class RequestSettings:
    """Everything about a request that is not the document. Hashable: it is part of the
    completion cache's key, since another layout or sampling gives another completion."""

    layout: Layout = Layout.SPM
    max_tokens: int = 64
    single_line: bool = False
    sampling: SamplingParams = SamplingParams()
    use_repo_context: bool = False
    #: The context window the repository block is planned for (the engine checks exactly).
    n_ctx: int = DEFAULT_N_CTX
    #: A remote engine answers: the repository block keeps to the workspace folder.
    remote_engine: bool = False
    #: At most this share of the prompt goes to other files (the engine caps it at its own, 0.5).
    repo_share: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestSettings:
        return cls(
            layout=Layout(settings.layout),
            max_tokens=settings.max_tokens,
            single_line=settings.single_line,
            sampling=SamplingParams(temperature=settings.temperature, top_p=settings.top_p),
            use_repo_context=settings.use_repo_context,
            n_ctx=settings.n_ctx,
        )

    @property
    def repo_budget(self) -> int:
        """Tokens the repository block may take (``PromptBudget.repo_tokens``)."""
        return PromptBudget(n_ctx=self.n_ctx, max_new_tokens=self.max_tokens, repo_share=self.repo_share).repo_tokens


def recent_files_context(
    path: Path, repo: RepoLocation, recent_files: Sequence[str]
) -> tuple[RepoFile, ...]:
    """Recent files from the same folder (read now, from disk): the context before
    ``app.core.repo_context``; kept for scripts that call it."""
    files = []
    for name in list(recent_files)[:MAX_CONTEXT_FILES]:
        other = Path(name)
        if other != path and other.parent == path.parent and other.is_file():
            try:
                files.append(RepoFile(repo.relative(other), other.read_text(encoding="utf-8")[:MAX_CONTEXT_CHARS]))
            except (OSError, UnicodeDecodeError):
                continue
    return tuple(files)


def plan_context(
    inputs: ContextInputs,
    settings: RequestSettings,
    count_tokens: CountTokens = estimate_tokens,
    provider: RepoContext | None = None,
) -> ContextBlock:
    """The repository block for ``inputs`` within the settings' budget (reads files)."""
    provider = provider if provider is not None else RepoContext(count_tokens)
    remote = settings.remote_engine or inputs.remote
    if remote != inputs.remote:
        inputs = dataclasses.replace(inputs, remote=remote)
    return provider.build(inputs, settings.repo_budget)


def build_request(
    text: str,
    caret: int,
    settings: RequestSettings,
    *,
    path: Path | None = None,
    repo: RepoLocation | None = None,
    recent_files: Sequence[str] = (),
    document: str | None = None,
    context: ContextBlock | None = None,
) -> CompletionRequest:
    """The request for a completion at ``caret`` of ``text``.

    ``repo`` (``app.core.repo.locate(path)``) gives the path the model sees, relative to
    the repository root. With ``use_repo_context`` the repository block is ``context``
    (the session's); without one, a block is planned now for this file alone, with
    ``recent_files`` as its recently edited files. ``document`` keys the engine's
    per-document KV snapshot.
    """
    caret = max(0, min(caret, len(text)))
    use_repo = settings.use_repo_context and path is not None
    if use_repo and context is None and path is not None:
        inputs = ContextInputs(path, open_texts={path: text}, recent=tuple(Path(p) for p in recent_files),
                               current_text=text)
        try:
            context = plan_context(inputs, settings)
        except (OSError, ValueError, RuntimeError) as exc:  # e.g. a path that vanished meanwhile
            log.info("no repository context for %s: %s", path, exc)
    if not use_repo:
        context = None
    relative_path = context.current_path if context is not None else repo.relative_path if repo is not None else None
    return CompletionRequest(
        prefix=text[:caret],
        suffix=text[caret:],
        layout=settings.layout,
        max_tokens=settings.max_tokens,
        single_line=settings.single_line,
        sampling=settings.sampling,
        path=relative_path,
        repo_name=context.repo_name if context is not None else None,
        repo_files=context.files if context is not None else (),
        document=document,
    )
