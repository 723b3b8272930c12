"""The one engine interface everything above the engine talks to.

The completion session (through ``app.core.session.runner`` and the GUI worker), the quant
comparison and the evaluation need exactly these members of an engine, and nothing else:
the local llama.cpp ``Engine`` and the remote engines (``app.core.remote``) implement
them, so no caller knows which one runs. How an engine comes to be ready differs (a
model file is loaded, a server is connected) and is deliberately not part of it.

``ScoringEngine`` adds teacher-forced scoring from the engine's own logits (top-1
agreement, perplexity): only an engine that holds the logits has it, and the comparison
leaves those columns empty for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.core.engine import CancelToken, CompletionRequest, CompletionResult, PrefillResult, TextCallback, TokenScore
from app.core.fim import FimPrompt
from app.core.model_info import FimTokenIds


class CompletionEngine(Protocol):
    """What the session, the comparison and the evaluation use of an engine."""

    @property
    def is_loaded(self) -> bool:
        """Ready to complete (a model loaded, a server connected)."""
        ...

    @property
    def n_ctx(self) -> int:
        """Tokens of context the prompt and the completion share."""
        ...

    @property
    def fim_tokens(self) -> FimTokenIds:
        """The model's FIM control tokens (None where it lacks one: prefix-only)."""
        ...

    def build_prompt(self, request: CompletionRequest) -> FimPrompt:
        """The exact prompt ``complete`` would evaluate for ``request``."""
        ...

    def complete(
        self, request: CompletionRequest, on_text: TextCallback | None = None, cancel: CancelToken | None = None
    ) -> CompletionResult:
        """Complete ``request`` streaming text to ``on_text``; a cancel ends it with stop reason "cancelled"."""
        ...

    def prefill(self, request: CompletionRequest, cancel: CancelToken | None = None) -> PrefillResult:
        """Evaluate the prompt ahead of the request that will use it (idle time)."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Text to this engine's token ids, never parsing special tokens."""
        ...

    def token_text(self, token: int) -> str:
        """A token as the prompt inspector shows it."""
        ...

    def reset_cache(self) -> None:
        """The next request starts cold (fair comparisons)."""
        ...

    def close(self) -> None:
        """Free the model / forget the connection (safe twice)."""
        ...


class ScoringEngine(CompletionEngine, Protocol):
    """An engine with logits: the comparison's agreement and perplexity need it."""

    def score(
        self, context: Sequence[int], targets: Sequence[int], cancel: CancelToken | None = None
    ) -> list[TokenScore]:
        ...
