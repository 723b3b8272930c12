"""llama.cpp's ``llama-server`` as a Starpad engine.

The prompt goes as **token ids** — the exact FIM sequence the local engine would evaluate,
tokenized by the server's own ``/tokenize`` (so the vocabulary is always the server's) —
to ``POST /completion``, streamed, with ``cache_prompt`` so the server's KV cache plays the
role of ours: a keystroke after a completion re-evaluates only the new tokens. The
server's ``timings`` (``cache_n`` reused, ``prompt_n`` evaluated, speeds) become the
status bar's numbers; we never assume our cache survived, we report what it says.

A server is shared. A fixed slot per document is used only when ``/slots`` shows idle
slots to spare; otherwise the server chooses (it prefers the slot whose cache shares the
longest prefix with the prompt, which is ours in the common case).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from app.core.engine import (
    CancelToken, CompletionRequest, CompletionResult, CompletionStats, PrefillResult, TextCallback,
)
from app.core.fim import PromptBuilder
from app.core.model_info import FimTokenIds
from app.core.remote.base import FIM_SPELLINGS, MemoTokenizer, RemoteEngineBase, TextStops
from app.core.remote.errors import NoFimTokensError, RemoteProtocolError, RemoteServerError
from app.core.remote.http import Cancellable, StreamCancelled
from app.core.remote.profile import ServerKind, ServerProfile

log = logging.getLogger("starpad.remote")

#: Tokens per slot assumed when /props does not say (old servers).
FALLBACK_N_CTX = 4096


class LlamaServerEngine(RemoteEngineBase):
    kind = ServerKind.LLAMA_SERVER

    def __init__(self, profile: ServerProfile) -> None:
        super().__init__(profile)
        self._pieces: dict[int, str] = {}
        self._special: set[int] = set()
        self._fim_texts: dict[int, str] = {}
        self._spare_slots: list[int] = []
        self._slot_of: dict[str, int] = {}
        self.total_slots = 0
        self._tokenizer = MemoTokenizer(self._tokenize_remote)

    # ----------------------------------------------------------- connect
    def connect(self, cancel: Cancellable | None = None) -> LlamaServerEngine:
        """Check health, read the model and context, find the FIM tokens and spare slots."""
        started = time.perf_counter()
        self.client.get_json("/health", cancel)
        props = self.client.get_json("/props", cancel)
        if not isinstance(props, dict):
            raise RemoteProtocolError(f"{self.profile.host} answered /props with something unexpected")
        settings = props.get("default_generation_settings") or {}
        self._n_ctx = int(settings.get("n_ctx") or FALLBACK_N_CTX)
        self.total_slots = int(props.get("total_slots") or 1)
        served = [str(props.get("model_alias") or "")]
        try:
            models = self.client.get_json("/v1/models", cancel)
            served = [str(m.get("id")) for m in models.get("data", []) if m.get("id")] or served
        except RemoteServerError:
            pass  # old servers: /props named it
        if self.profile.model and self.profile.model not in served:
            raise RemoteServerError(
                f"{self.profile.host} serves {', '.join(served) or 'an unnamed model'}, not {self.profile.model}"
            )
        self.model_name = self.profile.model or served[0] or "llama-server"
        self._fim = self._find_fim_tokens(cancel)
        if not self._fim.can_fill_middle:
            raise NoFimTokensError(
                f"{self.model_name} on {self.profile.host} has no fill-in-the-middle tokens: "
                f"Starpad needs a FIM code model such as StarCoder2"
            )
        self._spare_slots = self._idle_slots(cancel)
        self._tokenizer = MemoTokenizer(self._tokenize_remote)
        self._builder = PromptBuilder(self._tokenizer, self._fim)
        self._connected = True
        self.load_seconds = time.perf_counter() - started
        log.info("connected to llama-server %s: %s, n_ctx=%d, slots=%d (spare %s)", self.profile.host,
                 self.model_name, self._n_ctx, self.total_slots, self._spare_slots)
        return self

    def _find_fim_tokens(self, cancel: Cancellable | None) -> FimTokenIds:
        found: dict[str, int | None] = {}
        for role, spellings in FIM_SPELLINGS.items():
            found[role] = None
            for text in spellings:
                ids = self._tokenize_raw(text, special=True, cancel=cancel)
                if len(ids) == 1 and len(self._tokenize_raw(text, special=False, cancel=cancel)) > 1:
                    found[role] = ids[0]
                    self._pieces[ids[0]] = text
                    self._special.add(ids[0])
                    self._fim_texts[ids[0]] = text
                    break
        return FimTokenIds(**found)

    def _idle_slots(self, cancel: Cancellable | None) -> list[int]:
        """Slots nobody is using now; empty when the server hides /slots or has one slot."""
        if self.total_slots < 2:
            return []
        try:
            slots = self.client.get_json("/slots", cancel)
        except RemoteServerError:
            return []  # started without --slots: let the server choose
        if not isinstance(slots, list):
            return []
        return [int(s["id"]) for s in slots if isinstance(s, dict) and "id" in s and not s.get("is_processing")]

    def _slot_for(self, document: str | None) -> int:
        """A fixed slot per document while spare ones last; -1: the server chooses."""
        if document is None or not self._spare_slots:
            return -1
        slot = self._slot_of.get(document)
        if slot is None:
            if len(self._slot_of) >= len(self._spare_slots):
                return -1
            slot = self._spare_slots[len(self._slot_of)]
            self._slot_of[document] = slot
        return slot

    # ------------------------------------------------------------- tokens
    def _tokenize_raw(self, text: str, special: bool, cancel: Cancellable | None = None) -> list[int]:
        answer = self.client.post_json(
            "/tokenize", {"content": text, "add_special": False, "parse_special": special, "with_pieces": True},
            cancel,
        )
        try:
            entries = answer["tokens"]
            ids = [int(e["id"]) for e in entries]
        except (KeyError, TypeError, ValueError):
            raise RemoteProtocolError(f"{self.profile.host} answered /tokenize unexpectedly") from None
        for entry in entries:
            piece = entry.get("piece")
            if isinstance(piece, str):
                self._pieces.setdefault(int(entry["id"]), piece)
            elif isinstance(piece, list):
                self._pieces.setdefault(int(entry["id"]), bytes(piece).decode("utf-8", errors="replace"))
        return ids

    def _tokenize_remote(self, text: str) -> list[int]:
        """User text never parses special tokens: code containing ``<fim_prefix>`` stays text."""
        return self._tokenize_raw(text, special=False)

    def tokenize(self, text: str) -> list[int]:
        self._require()
        return self._tokenizer(text)

    def token_text(self, token: int) -> str:
        """The piece the server gave when it tokenized (the inspector's labels)."""
        return self._pieces.get(token, f"<{token}>")

    # ----------------------------------------------------------- requests
    def _body(self, tokens: list[int], request: CompletionRequest, n_predict: int, stream: bool) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "prompt": tokens,
            "n_predict": n_predict,
            "stream": stream,
            "cache_prompt": not self._cold_next,
            "id_slot": self._slot_for(request.document),
            "return_tokens": True,
            "timings_per_token": True,
            # pre/suf/mid are not end-of-generation tokens to llama.cpp: render them as
            # text and stop on them, so the server ends exactly where the local engine does.
            "preserved_tokens": list(self._fim_texts.values()),
            "stop": [self._fim_texts[t] for t in (self._fim.pre, self._fim.suf, self._fim.mid) if t is not None],
            "seed": sampling.seed,
            "n_probs": 0,
        }
        if sampling.temperature <= 0:
            body.update({"samplers": ["top_k"], "top_k": 1})
        else:
            body.update({"samplers": ["top_k", "top_p", "temperature"], "top_k": sampling.top_k,
                         "top_p": sampling.top_p, "temperature": sampling.temperature})
        if sampling.logit_bias:
            body["logit_bias"] = [[token, bias] for token, bias in sampling.logit_bias]
        if self.profile.model:
            body["model"] = self.profile.model
        return body

    def complete(
        self, request: CompletionRequest, on_text: TextCallback | None = None, cancel: CancelToken | None = None
    ) -> CompletionResult:
        started = time.perf_counter()
        prompt = self.build_prompt(request)
        tokens = prompt.tokens
        body = self._body(tokens, request, request.max_tokens, stream=True)
        stops = TextStops(request, on_text)
        generated: list[int] = []
        timings: dict[str, Any] = {}
        first_at: float | None = None
        stop_reason = "max_tokens"
        try:
            with self.client.stream("/completion", body, cancel) as events:
                for event in events:
                    timings = event.get("timings") or timings
                    if "prompt_progress" in event:
                        continue
                    event_tokens = [int(t) for t in event.get("tokens") or () if int(t) >= 0]
                    reason = None
                    for token in event_tokens:
                        first_at = first_at or time.perf_counter()
                        reason = self._stop_reason_for(token)
                        if reason is not None:
                            break
                        generated.append(token)
                    if reason is not None:
                        stop_reason = reason
                        break
                    if stops.feed(str(event.get("content") or "")):
                        break  # single line: the rest is not wanted, closing stops the server
                    if event.get("stop"):
                        stop_reason = self._final_reason(event)
                        if stop_reason == "eos" and generated:
                            generated.pop()  # the end-of-generation token itself, streamed before the stop
                        break
                else:
                    raise RemoteProtocolError(f"the stream from {self.profile.host} ended without its last event")
        except StreamCancelled:
            stop_reason = "cancelled"
        finally:
            self._cold_next = False
        text, stop_reason = stops.finish(stop_reason)
        stats = self._stats(len(tokens), len(generated), timings, started, first_at)
        return CompletionResult(text, prompt, stop_reason, stats, tuple(generated))

    def prefill(self, request: CompletionRequest, cancel: CancelToken | None = None) -> PrefillResult:
        """Evaluate the prompt into the server's cache without generating (``n_predict`` 0)."""
        started = time.perf_counter()
        prompt = self.build_prompt(request)
        tokens = prompt.tokens[:-1]  # as the local engine: the completion evaluates the last one
        if not tokens:
            return PrefillResult(prompt, self._empty_stats(0, started), cancelled=False)
        try:
            answer = self.client.post_json("/completion", self._body(tokens, request, 0, stream=False), cancel)
        except StreamCancelled:
            return PrefillResult(prompt, self._empty_stats(len(tokens), started), cancelled=True)
        finally:
            self._cold_next = False
        timings = answer.get("timings") or {} if isinstance(answer, dict) else {}
        return PrefillResult(prompt, self._stats(len(tokens), 0, timings, started, None), cancelled=False)

    def _stop_reason_for(self, token: int) -> str | None:
        fim = self._fim
        if token == fim.sep:
            return "file_sep"
        if token in fim.control_ids():
            return "fim_token"
        return None

    @staticmethod
    def _final_reason(event: dict[str, Any]) -> str:
        stop_type = str(event.get("stop_type") or "")
        if stop_type == "word":
            return "fim_token"  # our only stop words are the FIM tokens
        if stop_type == "eos":
            return "eos"
        if event.get("truncated"):
            return "context_full"
        return "max_tokens"

    def _stats(
        self, n_prompt: int, n_generated: int, timings: dict[str, Any], started: float, first_at: float | None
    ) -> CompletionStats:
        """The server's own numbers: what it reused (``cache_n``) and evaluated (``prompt_n``)."""
        now = time.perf_counter()
        try:
            cached = int(timings.get("cache_n") or 0)
            evaluated = int(timings.get("prompt_n") or 0)
            prompt_ms = float(timings.get("prompt_ms") or 0.0)
            prompt_tps = float(timings.get("prompt_per_second") or 0.0)
            gen_tps = float(timings.get("predicted_per_second") or 0.0)
        except (TypeError, ValueError):
            raise RemoteProtocolError(f"{self.profile.host} sent timings that are not numbers") from None
        if evaluated < 0:  # llama-server's "nothing measured"
            evaluated, prompt_ms, prompt_tps = 0, 0.0, 0.0
        return CompletionStats(
            prompt_tokens=n_prompt,
            cached_tokens=cached,
            generated_tokens=n_generated,
            prompt_ms=prompt_ms,
            ttft_ms=((first_at or now) - started) * 1000,
            prompt_tps=prompt_tps,
            gen_tps=gen_tps if n_generated > 1 else 0.0,
            ctx_used=min(self._n_ctx, n_prompt + n_generated),
            ctx_size=self._n_ctx,
            reused_exact=cached,
            evaluated=evaluated,
            fresh_spans=((cached, n_prompt),) if evaluated else (),
        )

