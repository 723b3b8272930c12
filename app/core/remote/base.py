"""What both remote engines share: the connection, prompt building and result shaping.

A remote engine builds the same ``FimPrompt`` the local engine would (``app.core.fim``),
so the prompt inspector, the budget cuts and the SPM/PSM layouts behave identically; only
the tokenizer differs (the server's own, or characters where a server has none).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.core.engine import (
    CancelToken, CompletionRequest, CompletionResult, CompletionStats, PrefillResult, TextCallback,
)
from app.core.errors import NoModelError
from app.core.fim import FimPrompt, PromptBudget, PromptBuilder
from app.core.model_info import FimTokenIds
from app.core.remote.http import HttpClient, HttpSettings
from app.core.remote.profile import ServerKind, ServerProfile
from app.core.textstream import repeats_suffix_at

log = logging.getLogger("starpad.remote")

#: The spellings of FIM control tokens across code models, StarCoder2's first.
FIM_SPELLINGS: dict[str, tuple[str, ...]] = {
    "pre": ("<fim_prefix>", "<|fim_prefix|>"),
    "suf": ("<fim_suffix>", "<|fim_suffix|>"),
    "mid": ("<fim_middle>", "<|fim_middle|>"),
    "pad": ("<fim_pad>", "<|fim_pad|>"),
    "rep": ("<repo_name>", "<|repo_name|>"),
    "sep": ("<file_sep>", "<|file_sep|>"),
}


@dataclass(frozen=True)
class RemoteDescription:
    """What the status bar says while a remote engine is active: code leaves the machine."""

    kind: ServerKind
    host: str
    model: str
    n_ctx: int
    is_loopback: bool

    @property
    def label(self) -> str:
        return f"Remote: {self.host} · {self.model}"


class RemoteEngineBase:
    """The ``CompletionEngine`` parts that do not depend on the protocol.

    Not thread-safe, like the local engine: one thread owns it; only
    ``CancelToken.cancel()`` is called from others.
    """

    kind: ServerKind = ServerKind.LLAMA_SERVER

    def __init__(self, profile: ServerProfile) -> None:
        self.profile = profile.validate()
        self.client = HttpClient(
            profile.endpoint, HttpSettings(timeout_s=profile.timeout_s, ca_bundle=profile.ca_bundle,
                                           api_key=profile.api_key),
        )
        self.model_name = profile.model or ""
        self._n_ctx = 0
        self._fim = FimTokenIds()
        self._builder: PromptBuilder | None = None
        self._connected = False
        #: The next request starts cold (``reset_cache``: comparisons and evaluations).
        self._cold_next = False
        self.load_seconds = 0.0

    # ----------------------------------------------------------- protocol
    @property
    def is_loaded(self) -> bool:
        return self._connected

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def fim_tokens(self) -> FimTokenIds:
        self._require()
        return self._fim

    def describe(self) -> RemoteDescription:
        # llama-server and llama-cpp-python name a model by its path on the server: the file says enough.
        shown = self.model_name.rsplit("/", 1)[-1] if self.model_name.endswith(".gguf") else self.model_name
        return RemoteDescription(self.kind, self.profile.host, shown, self._n_ctx, self.profile.endpoint.is_loopback)

    def build_prompt(self, request: CompletionRequest) -> FimPrompt:
        builder = self._require()
        budget = self._budget(request)
        return builder.build(request.prefix, request.suffix, budget, request.layout, path=request.path,
                             repo_name=request.repo_name, repo_files=request.repo_files)

    def reset_cache(self) -> None:
        """The server's cache is not ours to clear: the next request asks it not to reuse."""
        self._require()
        self._cold_next = True

    def close(self) -> None:
        self._connected = False
        self._builder = None

    def prefill(self, request: CompletionRequest, cancel: CancelToken | None = None) -> PrefillResult:
        """Servers without a prompt cache we can fill: nothing to do ahead of time."""
        started = time.perf_counter()
        prompt = self.build_prompt(request)
        return PrefillResult(prompt, self._empty_stats(len(prompt.tokens), started), cancelled=False)

    def complete(
        self, request: CompletionRequest, on_text: TextCallback | None = None, cancel: CancelToken | None = None
    ) -> CompletionResult:
        raise NotImplementedError

    def tokenize(self, text: str) -> list[int]:
        raise NotImplementedError

    def token_text(self, token: int) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------ helpers
    def _require(self) -> PromptBuilder:
        if not self._connected or self._builder is None:
            raise NoModelError("not connected to a server")
        return self._builder

    def _budget(self, request: CompletionRequest) -> PromptBudget:
        return PromptBudget(n_ctx=self._n_ctx, max_new_tokens=request.max_tokens)

    def _empty_stats(self, n_prompt: int, started: float) -> CompletionStats:
        elapsed = (time.perf_counter() - started) * 1000
        return CompletionStats(n_prompt, 0, 0, elapsed, elapsed, 0.0, 0.0, 0, self._n_ctx)


class TextStops:
    """The local engine's text rules, applied to a stream: single-line mode ends at the
    first newline after some content; the end that repeats the code after the caret is cut."""

    def __init__(self, request: CompletionRequest, on_text: TextCallback | None) -> None:
        self.request = request
        self.on_text = on_text
        self.text = ""
        self.stop_reason: str | None = None

    def feed(self, piece: str) -> bool:
        """Add streamed text; True when a text rule ended the completion."""
        if not piece:
            return False
        if self.request.single_line and "\n" in piece:
            combined = self.text + piece
            start = len(combined) - len(combined.lstrip())
            newline = combined.find("\n", start) if combined.strip() else -1
            if newline != -1:
                shown = combined[len(self.text) : newline]
                self.text = combined[:newline]
                if shown and self.on_text is not None:
                    self.on_text(shown)
                self.stop_reason = "newline"
                return True
        self.text += piece
        if self.on_text is not None:
            self.on_text(piece)
        return False

    def finish(self, stop_reason: str) -> tuple[str, str]:
        """The authoritative text and stop reason."""
        reason = self.stop_reason or stop_reason
        text = self.text
        cut = repeats_suffix_at(text, self.request.suffix) if self.request.suffix else None
        if cut is not None:
            text = text[:cut]
            reason = "suffix_repeat" if reason == "max_tokens" else reason
        return text, reason


class MemoTokenizer:
    """A remote tokenizer with a small memory: the prompt builder asks for the same text
    more than once (the whole prefix, then cut candidates), and each ask is a round trip."""

    def __init__(self, fetch: Callable[[str], list[int]], size: int = 16) -> None:
        self._fetch = fetch
        self._memo: OrderedDict[str, list[int]] = OrderedDict()
        self._size = size

    def __call__(self, text: str) -> list[int]:
        if not text:
            return []
        hit = self._memo.get(text)
        if hit is not None:
            self._memo.move_to_end(text)
            return list(hit)
        tokens = self._fetch(text)
        self._memo[text] = tokens
        while len(self._memo) > self._size:
            self._memo.popitem(last=False)
        return list(tokens)
