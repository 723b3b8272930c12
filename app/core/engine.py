"""The inference engine: one llama.cpp model and context, completing FIM prompts.

Why not ``llama_cpp.Llama``? Its ``create_completion(suffix=…)`` emits token 0 instead of
the FIM tokens, its ``eval`` cannot be cancelled mid-prompt, and it hides how many tokens
the KV cache saved. This engine drives llama-cpp-python's thin wrappers directly:

* the prompt is built as token ids (``app.core.fim``);
* a request reuses the longest common token prefix already in the KV cache, so a
  keystroke costs only the changed tokens — on a 2-core CPU the difference between a
  100-second cold prompt and a sub-second re-completion;
* prompt evaluation runs in batches with llama.cpp's abort callback wired to the
  request's cancel flag, and generation checks the flag before every token;
* every request reports the numbers the status bar shows.

An ``Engine`` is not thread-safe: one thread (the GUI's worker, or the CLI) owns it.
Only ``CancelToken.cancel()`` may be called from other threads.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals

from app.core import llama_runtime
from app.core.errors import CancelledError, ModelLoadError, NoModelError
from app.core.fim import FimPrompt, Layout, PromptBudget, PromptBuilder, RepoFile
from app.core.limits import MAX_N_CTX, MAX_THREADS, MIN_N_CTX
from app.core.model_info import FimTokenIds, ModelInfo, model_info
from app.core.textstream import Utf8Stream, repeats_suffix_at

log = logging.getLogger("starpad.engine")

DEFAULT_N_CTX = 16384
ProgressCallback = Callable[[float], None]
TextCallback = Callable[[str], None]


class CancelToken:
    """A flag another thread sets to stop a load or a request at the next token/batch."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class _Cancelled(Exception):
    pass


class EngineConfigError(ModelLoadError):
    """A setting the engine refuses before llama.cpp sees it: llama.cpp would crash the
    whole process (``--threads 100000``) or silently run with something else."""


class ContextSizeError(EngineConfigError):
    """A context below ``MIN_N_CTX`` or beyond what the model was trained on."""


def default_threads() -> int:
    """Physical cores: llama.cpp gains nothing from hyper-threads and loses to contention."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - psutil may not know on exotic systems
        physical = None
    return max(1, physical or os.cpu_count() or 1)


@dataclass(frozen=True)
class EngineConfig:
    n_ctx: int = DEFAULT_N_CTX
    n_threads: int | None = None  # None: physical cores
    #: Tokens per llama_decode call. llama.cpp lowers it to the context size (and the
    #: engine reads back what it really got), so it is an upper bound, not a promise.
    n_batch: int = 512
    n_gpu_layers: int = 0
    #: Off, deliberately: with mmap llama.cpp holds the file's pages *and* a repacked copy
    #: (3B Q4_K_M: 3.38 GB RSS at 4K vs 2.10 GB without), for a load ~2-3 s faster.
    #: app.core.memory_fit estimates for the mode used.
    use_mmap: bool = False
    #: A context beyond the model's trained one is an error (``ContextSizeError``) unless
    #: this is set: the window's context size is a preference for every model, so there it
    #: is lowered to the trained context and a note says so; a command line asked for it.
    clamp_to_trained: bool = False

    @property
    def threads(self) -> int:
        return self.n_threads or default_threads()


def resolve_context(config: EngineConfig, n_ctx_train: int) -> tuple[int, str | None]:
    """The context to create for ``config`` on a model trained on ``n_ctx_train``
    tokens (0: unknown), and a note when it was lowered; raises ``EngineConfigError``."""
    n_ctx = config.n_ctx
    limit = n_ctx_train or MAX_N_CTX
    if n_ctx < MIN_N_CTX:
        raise ContextSizeError(f"a context of {n_ctx:,} tokens is too small: use at least {MIN_N_CTX}")
    note = None
    if n_ctx > limit:
        if not config.clamp_to_trained:
            what = f"the model was trained on ({limit:,})" if n_ctx_train else f"Starpad supports ({limit:,})"
            raise ContextSizeError(f"a context of {n_ctx:,} tokens is more than {what}: use {MIN_N_CTX} to {limit:,}")
        note = f"context lowered to {limit:,} tokens, the most this model was trained on (asked for {n_ctx:,})"
        n_ctx = limit
    if config.n_threads is not None and not 1 <= config.n_threads <= MAX_THREADS:
        raise EngineConfigError(f"threads must be 1 to {MAX_THREADS}, not {config.n_threads}")
    if config.n_batch < 1:
        raise EngineConfigError(f"the batch size must be at least 1, not {config.n_batch}")
    return n_ctx, note


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0: greedy, deterministic
    top_k: int = 40
    top_p: float = 0.95
    seed: int = 42
    logit_bias: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class CompletionRequest:
    prefix: str
    suffix: str = ""
    layout: Layout = Layout.SPM
    max_tokens: int = 64
    single_line: bool = False
    sampling: SamplingParams = field(default_factory=SamplingParams)
    path: str | None = None
    repo_name: str | None = None
    repo_files: tuple[RepoFile, ...] = ()


@dataclass(frozen=True)
class CompletionStats:
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    prompt_ms: float
    ttft_ms: float
    prompt_tps: float
    gen_tps: float
    ctx_used: int
    ctx_size: int

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CompletionResult:
    text: str
    prompt: FimPrompt
    stop_reason: str  # eos | file_sep | fim_token | max_tokens | newline | suffix_repeat | context_full | cancelled
    stats: CompletionStats
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class TokenScore:
    """What the model predicts at one position of a teacher-forced sequence."""

    target: int
    argmax: int
    logprob: float  # log p(target | everything before)


class Engine:
    """One loaded model and its context. Load once, complete many times."""

    def __init__(self) -> None:
        llama_runtime.ensure_initialised()
        self._model: _internals.LlamaModel | None = None
        self._ctx: _internals.LlamaContext | None = None
        self._batch: _internals.LlamaBatch | None = None
        self._n_batch = 0  # what llama.cpp's context really accepts per llama_decode
        self._info: ModelInfo | None = None
        self._config = EngineConfig()
        self._builder: PromptBuilder | None = None
        self._kv_tokens: list[int] = []  # exactly what sequence 0 of the KV cache holds
        self._abort_flag: CancelToken | None = None
        # ggml calls the abort callback after *every graph node* (~900 per token for 3B),
        # each call a trip into Python for the GIL: ~4 % of generation speed, measured by
        # `main.py bench`. It is installed only while a prompt is evaluated, where one batch
        # can take many seconds; generation checks its cancel flag between tokens instead.
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._no_abort_cb = llama_cpp.ggml_abort_callback()  # NULL: ggml skips the check
        self.load_seconds = 0.0

    # ----------------------------------------------------------------- loading
    @property
    def info(self) -> ModelInfo | None:
        return self._info

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def is_loaded(self) -> bool:
        return self._ctx is not None

    @property
    def n_ctx(self) -> int:
        return self._ctx.n_ctx() if self._ctx is not None else 0

    @property
    def n_batch(self) -> int:
        """The most tokens one llama_decode call may carry in this context.

        llama.cpp lowers the batch to the *requested* context, then pads the context to a
        multiple of 256: ``n_ctx=100`` holds 256 tokens but takes 100 per decode. A larger
        batch is not an error code but an assertion that aborts the process (exit 134),
        so every batch the engine builds is cut to this size.
        """
        return self._n_batch if self._ctx is not None else 0

    def load(
        self,
        path: str | os.PathLike[str],
        config: EngineConfig = EngineConfig(),
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> ModelInfo:
        """Validate then load ``path``; the previous model stays loaded if this fails."""
        started = time.perf_counter()
        info = model_info(path)  # raises ModelFileError before llama.cpp sees a bad file
        n_ctx, note = resolve_context(config, info.n_ctx_train)
        if note is not None:
            log.warning("%s", note)
            info = dataclasses.replace(info, notes=(*info.notes, note))

        def on_progress(value: float, _data: ctypes.c_void_p) -> bool:
            if progress is not None:
                progress(float(value))
            return not (cancel is not None and cancel.cancelled)

        progress_cb = llama_cpp.llama_progress_callback(on_progress)
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = config.n_gpu_layers
        model_params.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP if config.use_mmap else llama_cpp.LLAMA_LOAD_MODE_NONE
        model_params.progress_callback = progress_cb
        llama_runtime.take_recent_errors()
        try:
            model = _internals.LlamaModel(path_model=str(info.path), params=model_params, verbose=False)
        except ValueError:
            if cancel is not None and cancel.cancelled:
                raise CancelledError("loading was cancelled") from None
            detail = llama_runtime.take_recent_errors()
            raise ModelLoadError(
                f"llama.cpp could not load {info.path.name}" + (f": {detail}" if detail else "")
            ) from None

        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = n_ctx
        ctx_params.n_batch = min(config.n_batch, n_ctx)
        ctx_params.n_ubatch = ctx_params.n_batch
        ctx_params.n_threads = config.threads
        ctx_params.n_threads_batch = config.threads
        ctx_params.no_perf = True
        try:
            ctx = _internals.LlamaContext(model=model, params=ctx_params, verbose=False)
        except ValueError:
            model.close()
            detail = llama_runtime.take_recent_errors()
            raise ModelLoadError(
                f"could not create a {n_ctx:,}-token context for {info.path.name} "
                f"(not enough memory? try a smaller context)" + (f": {detail}" if detail else "")
            ) from None

        # llama.cpp's own numbers win: it may have lowered the batch and padded the context.
        # The ubatch bound matters only for non-causal models (llama.cpp asserts that one
        # batch fits one ubatch there); both are the same size here.
        n_batch = max(1, min(llama_cpp.llama_n_batch(ctx.ctx), llama_cpp.llama_n_ubatch(ctx.ctx)))
        self.close()
        self._model, self._ctx, self._info, self._config = model, ctx, info, config
        self._n_batch = n_batch
        self._batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
        fim = self._fim_ids_from_vocab(info)
        self._builder = PromptBuilder(self.tokenize, fim)
        self._kv_tokens = []
        self.load_seconds = time.perf_counter() - started
        log.info(
            "loaded %s (%s, %s) ctx=%d (asked %d) batch=%d threads=%d in %.2f s",
            info.path.name, info.arch, info.file_type, self.n_ctx, n_ctx, n_batch, config.threads, self.load_seconds,
        )
        return info

    def _fim_ids_from_vocab(self, info: ModelInfo) -> FimTokenIds:
        """llama.cpp's own view of the FIM tokens wins over our header reading."""
        assert self._model is not None
        vocab = self._model.vocab

        def valid(token: int) -> int | None:
            return token if token >= 0 else None

        ids = FimTokenIds(
            pre=valid(llama_cpp.llama_vocab_fim_pre(vocab)),
            suf=valid(llama_cpp.llama_vocab_fim_suf(vocab)),
            mid=valid(llama_cpp.llama_vocab_fim_mid(vocab)),
            pad=valid(llama_cpp.llama_vocab_fim_pad(vocab)),
            rep=valid(llama_cpp.llama_vocab_fim_rep(vocab)),
            sep=valid(llama_cpp.llama_vocab_fim_sep(vocab)),
        )
        if ids != info.fim:
            log.info("FIM ids differ between header %s and llama.cpp %s; using llama.cpp's", info.fim, ids)
        return ids

    def close(self) -> None:
        """Free the model and context (safe to call twice)."""
        for resource in (self._batch, self._ctx, self._model):
            if resource is not None:
                resource.close()
        self._batch = self._ctx = self._model = None
        self._n_batch = 0
        self._info = None
        self._builder = None
        self._kv_tokens = []

    # -------------------------------------------------------------- tokens
    def _require(self) -> tuple[_internals.LlamaModel, _internals.LlamaContext, _internals.LlamaBatch]:
        if self._model is None or self._ctx is None or self._batch is None:
            raise NoModelError("no model is loaded")
        return self._model, self._ctx, self._batch

    def tokenize(self, text: str) -> list[int]:
        """Text to ids, never parsing special tokens: user code that *contains* the
        string ``<fim_prefix>`` must not be able to inject control tokens."""
        model, _, _ = self._require()
        return model.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def token_bytes(self, token: int) -> bytes:
        model, _, _ = self._require()
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(model.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(model.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def token_text(self, token: int) -> str:
        """A token as the prompt inspector shows it: control tokens by name."""
        model, _, _ = self._require()
        if llama_cpp.llama_vocab_get_attr(model.vocab, token) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
            return model.token_get_text(token)
        return self.token_bytes(token).decode("utf-8", errors="replace")

    @property
    def fim_tokens(self) -> FimTokenIds:
        if self._builder is None:
            raise NoModelError("no model is loaded")
        return self._builder.fim

    def reset_cache(self) -> None:
        """Forget everything evaluated: the next request starts cold (fair benchmarks)."""
        _, ctx, _ = self._require()
        llama_cpp.llama_memory_clear(ctx.memory, True)
        self._kv_tokens = []

    @property
    def kv_tokens(self) -> tuple[int, ...]:
        """The tokens currently evaluated in the KV cache (for tests and the inspector)."""
        return tuple(self._kv_tokens)

    # ----------------------------------------------------------- prompts
    def build_prompt(self, request: CompletionRequest) -> FimPrompt:
        self._require()
        assert self._builder is not None
        budget = PromptBudget(n_ctx=self.n_ctx, max_new_tokens=request.max_tokens)
        return self._builder.build(
            request.prefix,
            request.suffix,
            budget,
            request.layout,
            path=request.path,
            repo_name=request.repo_name,
            repo_files=request.repo_files,
        )

    # -------------------------------------------------------- evaluation
    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        flag = self._abort_flag
        return flag is not None and flag.cancelled

    def _evaluate(self, tokens: Sequence[int], cancel: CancelToken | None) -> int:
        """Make the KV cache hold exactly ``tokens`` with logits for the last one.

        Returns how many leading tokens were reused from the cache. Raises ``_Cancelled``
        between batches or, via llama.cpp's abort callback, inside one.
        """
        model, ctx, batch = self._require()
        if not tokens:
            raise ValueError("empty prompt")
        if len(tokens) > self.n_ctx:
            raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context of {self.n_ctx}")
        reused = 0
        for a, b in zip(self._kv_tokens, tokens, strict=False):  # stops at the shorter
            if a != b:
                break
            reused += 1
        reused = min(reused, len(tokens) - 1)  # the last token must run again for its logits
        if reused < len(self._kv_tokens):
            if not llama_cpp.llama_memory_seq_rm(ctx.memory, 0, reused, -1):
                llama_cpp.llama_memory_clear(ctx.memory, True)
                reused = 0
            del self._kv_tokens[reused:]
        n_batch = self._n_batch
        pos = reused
        self._abort_flag = cancel
        if cancel is not None:
            llama_cpp.llama_set_abort_callback(ctx.ctx, self._abort_cb, None)
        try:
            while pos < len(tokens):
                if cancel is not None and cancel.cancelled:
                    raise _Cancelled
                chunk = list(tokens[pos : pos + n_batch])
                batch.set_batch(chunk, n_past=pos, logits_all=False)
                rc = llama_cpp.llama_decode(ctx.ctx, batch.batch)
                if rc != 0:
                    self._resync_after_failed_decode(ctx, tokens)
                    if rc == 2:
                        raise _Cancelled
                    raise ModelLoadError(f"llama.cpp failed to evaluate the prompt (code {rc})")
                self._kv_tokens.extend(chunk)
                pos += len(chunk)
        finally:
            self._abort_flag = None
            if cancel is not None:
                llama_cpp.llama_set_abort_callback(ctx.ctx, self._no_abort_cb, None)
        return reused

    def _resync_after_failed_decode(self, ctx: _internals.LlamaContext, tokens: Sequence[int]) -> None:
        """An aborted decode keeps the ubatches it finished: trust llama.cpp's positions."""
        kept = llama_cpp.llama_memory_seq_pos_max(ctx.memory, 0) + 1
        kept = max(0, min(kept, len(tokens)))
        self._kv_tokens = list(tokens[:kept])
        llama_cpp.llama_memory_seq_rm(ctx.memory, 0, kept, -1)

    def _decode_one(self, token: int) -> None:
        _, ctx, batch = self._require()
        batch.set_batch([token], n_past=len(self._kv_tokens), logits_all=False)
        rc = llama_cpp.llama_decode(ctx.ctx, batch.batch)
        if rc != 0:
            self._resync_after_failed_decode(ctx, [*self._kv_tokens, token])
            raise ModelLoadError(f"llama.cpp failed to decode a token (code {rc})")
        self._kv_tokens.append(token)

    def _make_sampler(self, params: SamplingParams) -> Any:
        model, _, _ = self._require()
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if params.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(params.logit_bias))(
                *(llama_cpp.llama_logit_bias(token, bias) for token, bias in params.logit_bias)
            )
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_logit_bias(model.n_vocab(), len(params.logit_bias), biases)
            )
        if params.temperature <= 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(params.seed))
        return chain

    def end_token_ids(self) -> frozenset[int]:
        """Every token that ends a completion: end-of-generation and FIM control tokens.

        Benchmarks ban them (logit bias) to generate an exact number of tokens.
        """
        model, _, _ = self._require()
        eog = (t for t in range(model.n_vocab()) if llama_cpp.llama_vocab_is_eog(model.vocab, t))
        return frozenset(eog) | frozenset(self.fim_tokens.control_ids())

    def _stop_reason_for(self, token: int) -> str | None:
        model, _, _ = self._require()
        fim = self.fim_tokens
        if token == fim.sep:
            return "file_sep"
        if token in fim.control_ids():
            return "fim_token"
        if llama_cpp.llama_vocab_is_eog(model.vocab, token):
            return "eos"
        return None

    # -------------------------------------------------------- completion
    def complete(
        self,
        request: CompletionRequest,
        on_text: TextCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> CompletionResult:
        """Complete ``request``; ``on_text`` receives text as it streams.

        The returned ``text`` is authoritative: it may be shorter than what streamed when
        the tail turned out to repeat the code after the caret.
        """
        started = time.perf_counter()
        prompt = self.build_prompt(request)
        tokens = prompt.tokens
        if not tokens:  # empty document in prefix-only mode: nothing to condition on
            model, _, _ = self._require()
            tokens = [llama_cpp.llama_vocab_bos(model.vocab)]
        try:
            reused = self._evaluate(tokens, cancel)
        except _Cancelled:
            stats = self._stats(len(tokens), 0, 0, started, time.perf_counter(), None, None)
            return CompletionResult("", prompt, "cancelled", stats)
        prompt_done = time.perf_counter()

        sampler = self._make_sampler(request.sampling)
        stream = Utf8Stream()
        text = ""
        generated: list[int] = []
        first_token_at: float | None = None
        last_token_at: float | None = None
        stop_reason = "max_tokens"
        _, ctx, _ = self._require()
        try:
            for _ in range(request.max_tokens):
                if cancel is not None and cancel.cancelled:
                    stop_reason = "cancelled"
                    break
                token = llama_cpp.llama_sampler_sample(sampler, ctx.ctx, -1)
                now = time.perf_counter()
                first_token_at = first_token_at or now
                last_token_at = now
                reason = self._stop_reason_for(token)
                if reason is not None:
                    stop_reason = reason
                    break
                generated.append(token)
                piece = stream.feed(self.token_bytes(token))
                text, piece, reason = self._apply_text_stops(text, piece, request)
                if piece and on_text is not None:
                    on_text(piece)
                if reason is not None:
                    stop_reason = reason
                    break
                if len(self._kv_tokens) >= self.n_ctx:
                    stop_reason = "context_full"
                    break
                if len(generated) < request.max_tokens:
                    self._decode_one(token)
        finally:
            llama_cpp.llama_sampler_free(sampler)
        tail = stream.flush()
        if tail and stop_reason not in ("newline", "suffix_repeat"):
            text += tail
            if on_text is not None:
                on_text(tail)
        cut = repeats_suffix_at(text, request.suffix) if request.suffix else None
        if cut is not None:
            text = text[:cut]
            stop_reason = "suffix_repeat" if stop_reason == "max_tokens" else stop_reason
        stats = self._stats(len(tokens), reused, len(generated), started, prompt_done, first_token_at, last_token_at)
        return CompletionResult(text, prompt, stop_reason, stats, tuple(generated))

    @staticmethod
    def _apply_text_stops(text: str, piece: str, request: CompletionRequest) -> tuple[str, str, str | None]:
        """Single-line mode ends at the first newline after some content."""
        if request.single_line and "\n" in piece:
            combined = text + piece
            start = len(combined) - len(combined.lstrip())
            newline = combined.find("\n", start) if combined.strip() else -1
            if newline != -1:
                return combined[:newline], combined[len(text) : newline], "newline"
        return text + piece, piece, None

    def _stats(
        self,
        n_prompt: int,
        reused: int,
        n_generated: int,
        started: float,
        prompt_done: float,
        first_token_at: float | None,
        last_token_at: float | None,
    ) -> CompletionStats:
        prompt_s = prompt_done - started
        evaluated = n_prompt - reused
        gen_s = (last_token_at - first_token_at) if first_token_at and last_token_at else 0.0
        return CompletionStats(
            prompt_tokens=n_prompt,
            cached_tokens=reused,
            generated_tokens=n_generated,
            prompt_ms=prompt_s * 1000,
            ttft_ms=((first_token_at or prompt_done) - started) * 1000,
            prompt_tps=evaluated / prompt_s if prompt_s > 0 and evaluated else 0.0,
            gen_tps=(n_generated - 1) / gen_s if gen_s > 0 and n_generated > 1 else 0.0,
            ctx_used=len(self._kv_tokens),
            ctx_size=self.n_ctx,
        )

    # ---------------------------------------------------------- scoring
    def score(
        self, context: Sequence[int], targets: Sequence[int], cancel: CancelToken | None = None
    ) -> list[TokenScore]:
        """Teacher-force ``targets`` after ``context``; the model's view at each position.

        Used for quant comparison: top-1 agreement with a reference completion and the
        log-likelihood of a buffer, both from real logits rather than generated text.
        """
        model, ctx, batch = self._require()
        if not targets:
            return []
        n_vocab = model.n_vocab()
        sequence = [*context, *targets]
        if len(sequence) > self.n_ctx:
            raise ValueError(f"{len(sequence)} tokens do not fit the context of {self.n_ctx}")
        # Reuse the cache for the context; then evaluate the targets with logits everywhere.
        first = max(1, len(context))
        try:
            self._evaluate(sequence[:first], cancel)
        except _Cancelled:
            raise CancelledError("scoring was cancelled") from None
        scores: list[TokenScore] = []
        logits = np.ctypeslib.as_array(ctx.get_logits_ith(-1), shape=(n_vocab,)).copy()
        position = first
        start_index = first - len(context)  # 1 when there is no context: the first target is the condition
        pending_logits = [logits]
        n_batch = self._n_batch
        while True:
            for row in pending_logits:
                target_index = len(scores) + start_index
                if target_index >= len(targets):
                    break
                target = targets[target_index]
                shifted = row - row.max()
                logprob = float(shifted[target] - np.log(np.exp(shifted).sum()))
                scores.append(TokenScore(target, int(row.argmax()), logprob))
            if position >= len(sequence) - 1 or len(scores) + start_index >= len(targets):
                break
            if cancel is not None and cancel.cancelled:
                raise CancelledError("scoring was cancelled")
            chunk = sequence[position : min(len(sequence) - 1, position + n_batch)]
            batch.set_batch(chunk, n_past=position, logits_all=True)
            rc = llama_cpp.llama_decode(ctx.ctx, batch.batch)
            if rc != 0:
                self._resync_after_failed_decode(ctx, sequence)
                raise ModelLoadError(f"llama.cpp failed to evaluate (code {rc})")
            self._kv_tokens.extend(chunk)
            pending_logits = [
                np.ctypeslib.as_array(ctx.get_logits_ith(i), shape=(n_vocab,)).copy() for i in range(len(chunk))
            ]
            position += len(chunk)
        return scores

