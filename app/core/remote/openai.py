"""OpenAI-compatible ``/v1/completions`` servers as a Starpad engine.

vLLM and Text Generation Inference serve StarCoder2 on GPUs; llama-cpp-python's server,
Ollama and LM Studio speak the same API. They take the prompt as **text**, so the FIM
prompt is sent with the model's special tokens spelled out (``<fim_prefix>`` …), which
these servers parse as the control tokens. (``Llama.create_completion(suffix=…)`` is not
used: it emits token 0 where StarCoder2's FIM tokens belong.)

There is no common tokenize endpoint, so the prompt is budgeted in characters: the
builder sees one "token" per character and a context of ``n_ctx × CHARS_PER_TOKEN``
(code averages 3–4 characters per StarCoder2 token; 2.5 leaves room). The server's
``usage`` (prompt tokens, cached tokens) is reported when it sends one; otherwise the prompt size
is an estimate (3.5 characters a token) and nothing is claimed reused.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from app.core.engine import CancelToken, CompletionRequest, CompletionResult, CompletionStats, TextCallback
from app.core.fim import FimPrompt, PromptBudget, PromptBuilder
from app.core.model_info import FimTokenIds
from app.core.remote.base import FIM_SPELLINGS, RemoteEngineBase, TextStops
from app.core.remote.errors import RemoteProtocolError, RemoteServerError
from app.core.remote.http import Cancellable, StreamCancelled
from app.core.remote.profile import ServerKind, ServerProfile

log = logging.getLogger("starpad.remote")

CHARS_PER_TOKEN = 2.5
#: For the status bar's prompt size when a server reports no usage.
TYPICAL_CHARS_PER_TOKEN = 3.5
#: The context assumed when the server does not say (llama-cpp-python's server default).
FALLBACK_N_CTX = 2048
#: Pseudo-token ids for the special tokens: above every Unicode code point.
_SPECIAL_BASE = 0x110000
_ROLES = ("pre", "suf", "mid", "pad", "rep", "sep")
#: Generation ends at any of these (the server's EOS ends it by itself).
STOP_TEXTS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<file_sep>", "<repo_name>",
              "<|endoftext|>")


def _chars(text: str) -> list[int]:
    return [ord(ch) for ch in text]


class OpenAIEngine(RemoteEngineBase):
    kind = ServerKind.OPENAI

    def __init__(self, profile: ServerProfile) -> None:
        super().__init__(profile)
        self._special_text = {_SPECIAL_BASE + i: FIM_SPELLINGS[role][0] for i, role in enumerate(_ROLES)}

    def connect(self, cancel: Cancellable | None = None) -> OpenAIEngine:
        """List the models (the first is the default) and the context where the server says."""
        started = time.perf_counter()
        answer = self.client.get_json("/v1/models", cancel)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise RemoteProtocolError(f"{self.profile.host} answered /v1/models without a model list")
        ids = [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]
        if not ids:
            raise RemoteServerError(f"{self.profile.host} serves no model")
        if self.profile.model and self.profile.model not in ids:
            raise RemoteServerError(f"{self.profile.host} serves {', '.join(ids[:5])}, not {self.profile.model}")
        self.model_name = self.profile.model or ids[0]
        card = next(m for m in data if isinstance(m, dict) and m.get("id") == self.model_name)
        meta = card.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        self._n_ctx = int(card.get("max_model_len") or meta.get("n_ctx") or FALLBACK_N_CTX)
        self._fim = FimTokenIds(**{role: _SPECIAL_BASE + i for i, role in enumerate(_ROLES)})
        self._builder = PromptBuilder(_chars, self._fim)
        self._connected = True
        self.load_seconds = time.perf_counter() - started
        log.info("connected to OpenAI-compatible %s: %s, n_ctx=%d", self.profile.host, self.model_name, self._n_ctx)
        return self

    def _budget(self, request: CompletionRequest) -> PromptBudget:
        return PromptBudget(n_ctx=int(self._n_ctx * CHARS_PER_TOKEN),
                            max_new_tokens=int(request.max_tokens * CHARS_PER_TOKEN))

    def tokenize(self, text: str) -> list[int]:
        self._require()
        return _chars(text)

    def token_text(self, token: int) -> str:
        return self._special_text.get(token) or (chr(token) if 0 <= token < _SPECIAL_BASE else f"<{token}>")

    def prompt_text(self, prompt: FimPrompt) -> str:
        """The prompt as the server receives it: special tokens spelled out."""
        return "".join(self.token_text(t) for t in prompt.tokens)

    def _body(self, prompt: FimPrompt, request: CompletionRequest) -> dict[str, Any]:
        sampling = request.sampling
        greedy = sampling.temperature <= 0
        return {
            "model": self.model_name,
            "prompt": self.prompt_text(prompt),
            "max_tokens": request.max_tokens,
            "temperature": 0.0 if greedy else sampling.temperature,
            "top_p": 1.0 if greedy else sampling.top_p,
            "top_k": 1 if greedy else sampling.top_k,
            "repeat_penalty": 1.0,  # llama-cpp-python's default is 1.1; the local engine has none
            "seed": sampling.seed,
            "stop": list(STOP_TEXTS),
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def complete(
        self, request: CompletionRequest, on_text: TextCallback | None = None, cancel: CancelToken | None = None
    ) -> CompletionResult:
        started = time.perf_counter()
        prompt = self.build_prompt(request)
        stops = TextStops(request, on_text)
        first_at: float | None = None
        last_at: float | None = None
        chunks = 0
        usage: dict[str, Any] = {}
        stop_reason = "max_tokens"
        try:
            with self.client.stream("/v1/completions", self._body(prompt, request), cancel) as events:
                for event in events:
                    usage = event.get("usage") or usage
                    choices = event.get("choices") or []
                    if not choices:
                        continue
                    choice = choices[0]
                    if not isinstance(choice, dict):
                        raise RemoteProtocolError(f"{self.profile.host} sent a malformed completion chunk")
                    piece = str(choice.get("text") or "")
                    if piece:
                        chunks += 1
                        now = time.perf_counter()
                        first_at = first_at or now
                        last_at = now
                    if stops.feed(piece):
                        break
                    reason = choice.get("finish_reason")
                    if reason:
                        stop_reason = "max_tokens" if reason == "length" else "eos"
        except StreamCancelled:
            stop_reason = "cancelled"
        finally:
            self._cold_next = False
        text, stop_reason = stops.finish(stop_reason)
        # The server's count where it sends one; otherwise an estimate (code: ~3.5 characters a token).
        n_prompt = int(usage.get("prompt_tokens") or 0) or max(1, round(len(prompt.tokens) / TYPICAL_CHARS_PER_TOKEN))
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        generated = int(usage.get("completion_tokens") or 0) or chunks
        now = time.perf_counter()
        gen_s = (last_at - first_at) if first_at and last_at else 0.0
        stats = CompletionStats(
            prompt_tokens=n_prompt, cached_tokens=cached, generated_tokens=generated,
            prompt_ms=((first_at or now) - started) * 1000, ttft_ms=((first_at or now) - started) * 1000,
            prompt_tps=0.0, gen_tps=(generated - 1) / gen_s if gen_s > 0 and generated > 1 else 0.0,
            ctx_used=min(self._n_ctx, n_prompt + generated), ctx_size=self._n_ctx, reused_exact=cached,
            evaluated=max(0, n_prompt - cached),
        )
        return CompletionResult(text, prompt, stop_reason, stats)
