"""The inference engine: one llama.cpp model and context, completing FIM prompts.

Why not ``llama_cpp.Llama``? Its ``create_completion(suffix=…)`` emits token 0 instead of
the FIM tokens, its ``eval`` cannot be cancelled mid-prompt, and it hides how many tokens
the KV cache saved. This engine drives llama-cpp-python's thin wrappers directly:

* the prompt is built as token ids (``app.core.fim``);
* a request keeps whatever the KV cache already holds (``app.core.reuse_plan``): the
  common token prefix, so a keystroke costs only the changed tokens, and — in the default
  ``ReuseMode.FAST`` — runs of the prompt cached at another position, moved there, so a
  click or a jump costs a few lines instead of the whole file (on a 2-core CPU: a
  second instead of 80);
* the cache of each document is kept as a snapshot (``CompletionRequest.document``), so
  switching files and back restores instead of recomputing;
* ``prefill`` evaluates a prompt in idle time without generating;
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
from collections import OrderedDict
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
from app.core.prompt_window import FULL_PROMPT, PromptWindow, grow, window_parts
from app.core.reuse_plan import ReuseMode, ReusePlan, ShiftPolicy, plan_reuse
from app.core.textstream import Utf8Stream, repeats_suffix_at

__all__ = [
    "CancelToken", "CompletionRequest", "CompletionResult", "CompletionStats", "ContextSizeError", "Engine",
    "EngineConfig", "EngineConfigError", "PrefillResult", "ReuseMode", "SamplingParams", "ShiftPolicy",
    "TokenScore", "default_threads", "resolve_context",
]

log = logging.getLogger("starpad.engine")

DEFAULT_N_CTX = 16384
#: Prompt speed before any is measured: parameter-tokens per second per thread. A 2-core
#: EPYC reads the 3.03 G-parameter 3B shape at ~20-30 tokens/s in 512-token batches but
#: ~14-16 in the short evaluations of an editing session (fixed costs per decode), which
#: is what a first latency budget is spent on.
PARAM_TOKENS_PER_S_PER_THREAD = 2.4e10
#: Evaluations shorter than this say little about prompt speed (fixed costs dominate).
MIN_TOKENS_FOR_SPEED = 32
#: A narrowed prompt keeps at least this many tokens: a few lines around the caret.
MIN_NARROW_PROMPT_TOKENS = 32
#: An idle-time growth step adds about this much prompt time of context (at the measured
#: prompt speed): short enough that a user pausing for a second or two completes some
#: steps — a keystroke cancels only the step under way, never the ones before it.
GROW_STEP_SECONDS = 1.5
#: …and never fewer tokens than this (each step costs a few decodes of overhead).
MIN_GROW_STEP_TOKENS = 32
#: Characters per token when sizing a growth step before it is tokenized (source code
#: in StarCoder2's vocabulary runs at ~3-4).
CHARS_PER_TOKEN = 3.5
#: A remembered window is kept only while it holds at least this share of the tokens a
#: new window would (an edit can leave the caret inside a window of two lines).
STICKY_MIN_SHARE = 0.75
#: Idle prefill decodes in batches this small: a keystroke aborts the batch under way and
#: loses it (llama.cpp keeps only finished batches), so small batches keep nearly all the
#: idle work for the request that interrupted it, at a few percent of prompt speed.
PREFILL_BATCH_TOKENS = 8
#: Documents whose prompt window is remembered (most recent kept).
MAX_WINDOWS = 64
#: Default memory for per-document KV snapshots: ~17K tokens of a 3B model in f16
#: (30 KiB per token), i.e. four or five files of a few thousand tokens.
DEFAULT_SNAPSHOT_BUDGET = 512 * 1024 * 1024
#: Sequence 0 holds the prompt; sequence 1 is scratch space for tokens inserted before a
#: moved block (llama.cpp appends to a sequence only at its end).
_MAIN_SEQ = 0
_SCRATCH_SEQ = 1
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
    #: How requests reuse the KV cache (``ReuseMode``); ``Engine.reuse_mode`` changes it
    #: without reloading.
    reuse: ReuseMode = ReuseMode.FAST
    shift_policy: ShiftPolicy = field(default_factory=ShiftPolicy)
    #: Bytes of per-document KV snapshots kept (least recently used dropped first); 0: none.
    snapshot_budget: int = DEFAULT_SNAPSHOT_BUDGET

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
    if config.snapshot_budget < 0:
        raise EngineConfigError(f"the snapshot memory must be 0 or more bytes, not {config.snapshot_budget}")
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
    #: Which document the prompt comes from (any stable key, e.g. the file's path or a tab
    #: id). The engine keeps a KV snapshot per document and restores it when the document
    #: comes back; None: no snapshot is taken or restored for this request.
    document: str | None = None
    #: The first token should come within this time. When evaluating the prompt would take
    #: longer (the engine's measured prompt speed × the tokens it cannot reuse) — the first
    #: completion in a file just opened — the prompt is narrowed around the caret to what
    #: fits; the rest of the context joins later, in idle-time prefills. None: whole prompt.
    latency_budget_ms: float | None = None
    #: For ``prefill`` with a latency budget: after the window at the caret, grow it
    #: towards the whole prompt. False: the window only (the session grows it after a
    #: longer idle, since a growth step moves the cache and a cancelled one costs the
    #: next request a shift).
    prefill_widens: bool = True


@dataclass(frozen=True)
class CompletionStats:
    """What one request cost.

    ``prompt_tokens == reused_exact + reused_shifted + evaluated``. ``cached_tokens`` is
    ``reused_exact + reused_shifted`` (what older callers call "not evaluated");
    ``restored`` says how many of those came from a document snapshot rather than the
    live cache. ``fresh_spans`` are the ``[start, end)`` runs of the prompt evaluated.
    """

    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    prompt_ms: float
    ttft_ms: float
    prompt_tps: float
    gen_tps: float
    ctx_used: int
    ctx_size: int
    reused_exact: int = 0
    reused_shifted: int = 0
    restored: int = 0
    evaluated: int = 0
    fresh_spans: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CompletionResult:
    text: str
    prompt: FimPrompt
    stop_reason: str  # eos | file_sep | fim_token | max_tokens | newline | suffix_repeat | context_full | cancelled
    stats: CompletionStats
    tokens: tuple[int, ...] = ()
    #: The prompt was narrowed to meet ``CompletionRequest.latency_budget_ms``: the whole
    #: context is still to be evaluated (idle-time prefill).
    narrowed: bool = False


@dataclass(frozen=True)
class PrefillResult:
    """A prompt evaluated ahead of the request that will use it (idle time)."""

    prompt: FimPrompt
    stats: CompletionStats
    cancelled: bool
    #: The prompt evaluated is a window of the document: more context can join later.
    narrowed: bool = False


@dataclass(frozen=True)
class _Reuse:
    """How ``_evaluate`` filled the cache: the stats' reuse fields."""

    exact: int
    shifted: int
    restored: int
    evaluated: int
    fresh_spans: tuple[tuple[int, int], ...]


@dataclass
class _Snapshot:
    """A copy of sequence 0 (``llama_state_seq_get_data``): tokens, positions, K and V."""

    tokens: tuple[int, ...]
    exact_len: int
    data: ctypes.Array[ctypes.c_uint8]

    @property
    def size(self) -> int:
        return len(self.data)


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
        self._kv_tokens: list[int] = []  # exactly what sequence 0 holds, at positions 0..n-1
        #: How many leading tokens of the cache are exact: computed with exactly the tokens
        #: before them, nothing moved. ReuseMode.EXACT never reuses past it.
        self._exact_len = 0
        #: llama_memory_seq_add only records a move; the keys are rotated at the start of
        #: the next llama_decode. A snapshot taken before that would store unrotated keys
        #: at their new positions, and an abort during the rotation would leave some
        #: layers rotated (a retry rotates them twice), so both wait for one decode.
        self._shift_pending = False
        self._can_shift = False
        self._reuse_mode = ReuseMode.FAST
        #: The document the live cache belongs to, whether it changed since its snapshot,
        #: and the snapshots of the others, least recently used first.
        self._document: str | None = None
        self._dirty = False
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()
        #: Per document, the part of it the last narrowed prompt covered: reused while the
        #: caret stays inside, so the prompt's edges do not move (``app.core.prompt_window``).
        self._windows: OrderedDict[str | None, PromptWindow] = OrderedDict()
        #: Prompt tokens/s measured on this model (None until a large enough evaluation).
        self._measured_prompt_tps: float | None = None
        self._abort_flag: CancelToken | None = None
        #: Tokens llama.cpp evaluated since loading (what idle work really did, cancels included).
        self._decoded_tokens = 0
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
        # A second sequence in one unified cache: tokens inserted before a moved block are
        # decoded there (see _fill_gap). Unified, both share one buffer of n_ctx cells, so
        # memory and attention cost are those of a single sequence.
        ctx_params.n_seq_max = 2
        ctx_params.kv_unified = True
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
        self._forget_cache()
        self._reuse_mode = config.reuse
        # Models with M-RoPE, ALiBi-free sliding windows or recurrent state cannot move
        # cached tokens: they get prefix reuse only.
        self._can_shift = bool(llama_cpp.llama_memory_can_shift(ctx.memory))
        self.load_seconds = time.perf_counter() - started
        log.info(
            "loaded %s (%s, %s) ctx=%d (asked %d) batch=%d threads=%d shift=%s in %.2f s",
            info.path.name, info.arch, info.file_type, self.n_ctx, n_ctx, n_batch, config.threads,
            self._can_shift, self.load_seconds,
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
        self._can_shift = False
        self._measured_prompt_tps = None  # the next model has its own speed
        self._forget_cache()

    def _forget_cache(self) -> None:
        """Bookkeeping for an empty cache and no snapshots (the caller empties llama.cpp's)."""
        self._kv_tokens = []
        self._exact_len = 0
        self._shift_pending = False
        self._document = None
        self._dirty = False
        self._snapshots.clear()
        self._windows.clear()

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
        """Forget everything evaluated, snapshots included: the next request starts cold
        (fair benchmarks)."""
        _, ctx, _ = self._require()
        llama_cpp.llama_memory_clear(ctx.memory, True)
        self._forget_cache()

    @property
    def kv_tokens(self) -> tuple[int, ...]:
        """The tokens sequence 0 of the KV cache holds, at positions 0..n-1."""
        return tuple(self._kv_tokens)

    @property
    def kv_exact_tokens(self) -> int:
        """How many leading ``kv_tokens`` are exact (no moved block before or among them)."""
        return self._exact_len

    def kv_positions(self, seq_id: int = _MAIN_SEQ) -> tuple[int, int]:
        """llama.cpp's lowest and highest position in a sequence, (-1, -1) when empty.

        For tests: after every request sequence 0 spans ``0..len(kv_tokens)-1`` and the
        scratch sequence 1 is empty.
        """
        _, ctx, _ = self._require()
        return (
            int(llama_cpp.llama_memory_seq_pos_min(ctx.memory, seq_id)),
            int(llama_cpp.llama_memory_seq_pos_max(ctx.memory, seq_id)),
        )

    @property
    def reuse_mode(self) -> ReuseMode:
        return self._reuse_mode

    @reuse_mode.setter
    def reuse_mode(self, mode: ReuseMode) -> None:
        """Takes effect with the next request; switching to EXACT never reuses a moved
        block evaluated before (``kv_exact_tokens`` and each snapshot's bound say where
        exactness ends)."""
        self._reuse_mode = ReuseMode(mode)

    @property
    def can_shift(self) -> bool:
        """Whether this model's cache can move tokens (FAST falls back to prefix reuse)."""
        return self._can_shift

    # ---------------------------------------------------------- snapshots
    @property
    def snapshot_bytes(self) -> int:
        """Memory held by document snapshots (the live cache not included)."""
        return sum(snapshot.size for snapshot in self._snapshots.values())

    @property
    def snapshot_documents(self) -> tuple[str, ...]:
        """Documents with a snapshot, least recently used first."""
        return tuple(self._snapshots)

    @property
    def document(self) -> str | None:
        """The document the live cache was last used for."""
        return self._document

    def save_snapshot(self, document: str) -> int:
        """Keep the live cache as ``document``'s snapshot now; returns its size in bytes
        (0 when it does not fit the budget or the cache is empty).

        Requests save automatically when the document changes; this is for idle time
        (the save then costs nothing later) and for tests.
        """
        _, ctx, _ = self._require()
        if not self._kv_tokens:
            return 0
        self._apply_pending_shift()
        budget = self._config.snapshot_budget
        size = int(llama_cpp.llama_state_seq_get_size(ctx.ctx, _MAIN_SEQ))
        self._snapshots.pop(document, None)
        if size <= 0 or size > budget:
            log.info("no snapshot of %s: %d bytes, budget %d", document, size, budget)
            return 0
        while self._snapshots and self.snapshot_bytes + size > budget:
            dropped, old = self._snapshots.popitem(last=False)
            log.debug("dropped the snapshot of %s (%d bytes)", dropped, old.size)
        data = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(ctx.ctx, data, size, _MAIN_SEQ))
        if written <= 0:
            log.warning("llama.cpp could not copy the cache of %s", document)
            return 0
        self._snapshots[document] = _Snapshot(tuple(self._kv_tokens), self._exact_len, data)
        if document == self._document:
            self._dirty = False
        log.debug("snapshot of %s: %d tokens, %d bytes", document, len(self._kv_tokens), size)
        return size

    def drop_snapshot(self, document: str) -> None:
        """Forget a document's snapshot (the file was closed)."""
        self._snapshots.pop(document, None)

    def _switch_document(self, document: str | None) -> None:
        """A request for another document: keep the live cache as its owner's snapshot
        first, if it changed since that was taken."""
        if document == self._document:
            return
        if self._document is not None and self._dirty and self._config.snapshot_budget > 0:
            self.save_snapshot(self._document)
        self._document = document
        self._dirty = False

    def _restore(self, document: str, snapshot: _Snapshot) -> bool:
        """Replace the live cache by ``snapshot``; on failure the cache is empty."""
        _, ctx, _ = self._require()
        llama_cpp.llama_memory_clear(ctx.memory, False)  # metadata only: the data is overwritten
        self._kv_tokens, self._exact_len, self._shift_pending = [], 0, False
        read = int(llama_cpp.llama_state_seq_set_data(ctx.ctx, snapshot.data, snapshot.size, _MAIN_SEQ))
        if read <= 0 or llama_cpp.llama_memory_seq_pos_max(ctx.memory, _MAIN_SEQ) != len(snapshot.tokens) - 1:
            log.warning("could not restore the snapshot of %s; evaluating from scratch", document)
            llama_cpp.llama_memory_clear(ctx.memory, False)
            self._snapshots.pop(document, None)
            return False
        self._kv_tokens = list(snapshot.tokens)
        self._exact_len = snapshot.exact_len
        self._snapshots.move_to_end(document)
        self._dirty = False
        return True

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

    def _choose_cache(
        self, document: str | None, tokens: Sequence[int], mode: ReuseMode, need_logits: bool
    ) -> tuple[ReusePlan, int]:
        """Pick the cache to start from — the live one or ``document``'s snapshot, whichever
        keeps more of ``tokens`` — and plan from it. Returns the plan and how many of its
        reused tokens came from a restored snapshot."""
        self._switch_document(document)
        plan = self._plan(self._kv_tokens, self._exact_len, tokens, mode, need_logits)
        snapshot = self._snapshots.get(document) if document is not None else None
        if snapshot is None or snapshot.tokens == tuple(self._kv_tokens):
            return plan, 0
        candidate = self._plan(snapshot.tokens, snapshot.exact_len, tokens, mode, need_logits)
        if candidate.reused <= plan.reused:
            return plan, 0
        assert document is not None
        if not self._restore(document, snapshot):
            return ReusePlan(len(tokens), 0), 0
        return candidate, candidate.reused

    def _plan(
        self, old: Sequence[int], exact_len: int, tokens: Sequence[int], mode: ReuseMode, need_logits: bool
    ) -> ReusePlan:
        return plan_reuse(
            old, tokens, mode=mode, exact_len=exact_len, need_logits=need_logits,
            can_shift=self._can_shift, policy=self._config.shift_policy,
        )

    def _evaluate(
        self,
        tokens: Sequence[int],
        cancel: CancelToken | None,
        *,
        mode: ReuseMode | None = None,
        document: str | None = None,
        need_logits: bool = True,
        batch: int | None = None,
    ) -> _Reuse:
        """Make sequence 0 of the KV cache hold exactly ``tokens`` (with logits for the
        last one when ``need_logits``), reusing what ``mode`` allows.

        Raises ``_Cancelled`` between batches or, via llama.cpp's abort callback, inside
        one. Whatever happens, ``_kv_tokens`` is what the cache holds afterwards: on a
        cancel, the part of ``tokens`` evaluated so far, followed by the moved blocks not
        yet reached (see ``_close_gaps``).
        """
        _, ctx, _ = self._require()
        if not tokens:
            raise ValueError("empty prompt")
        if len(tokens) > self.n_ctx:
            raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context of {self.n_ctx}")
        if cancel is not None and cancel.cancelled:
            raise _Cancelled  # before anything moves
        mode = self._reuse_mode if mode is None else mode
        plan, restored = self._choose_cache(document, tokens, mode, need_logits)
        if not self._rearrange(ctx, plan):
            plan, restored = ReusePlan(len(tokens), 0), 0
        try:
            for block in plan.blocks:
                start = len(self._kv_tokens)
                if block.new_end <= start:
                    continue  # right after the prefix: already in place
                if block.new_start > start:
                    self._fill_gap(ctx, tokens, start, block.new_start, cancel)
                    self._append(tokens[start : block.new_start], exact=True)
                self._append(tokens[block.new_start : block.new_end], exact=False)
        except BaseException:
            self._close_gaps(ctx, tokens, plan)
            raise
        self._append_decoded(ctx, tokens[len(self._kv_tokens) :], cancel, batch)
        return _Reuse(plan.prefix, plan.shifted, restored, plan.evaluated, plan.fresh_spans)

    def _close_gaps(self, ctx: _internals.LlamaContext, tokens: Sequence[int], plan: ReusePlan) -> None:
        """After a cancel (or a failure) while a gap was being filled: the blocks past it
        sit in the cache but not in ``_kv_tokens``. Move them left over the gaps instead
        of dropping them, so the request that interrupted a prefill still finds them.
        (Only FAST plans have blocks, so nothing exact is lost.)"""
        mem = ctx.memory
        llama_cpp.llama_memory_seq_rm(mem, _SCRATCH_SEQ, -1, -1)  # the gap's partial cells
        position = len(self._kv_tokens)
        llama_cpp.llama_memory_seq_rm(mem, _MAIN_SEQ, position, self._first_block_at_or_after(plan, position))
        for block in plan.blocks:
            if block.new_start < position:
                continue
            if block.new_start > position:
                left = position - block.new_start
                llama_cpp.llama_memory_seq_add(mem, _MAIN_SEQ, block.new_start, block.new_end, left)
                self._shift_pending = True
            self._append(tokens[block.new_start : block.new_end], exact=False)
            position += block.length
        self._dirty = True

    @staticmethod
    def _first_block_at_or_after(plan: ReusePlan, position: int) -> int:
        return min((b.new_start for b in plan.blocks if b.new_start >= position), default=-1)

    def _rearrange(self, ctx: _internals.LlamaContext, plan: ReusePlan) -> bool:
        """Drop what ``plan`` does not keep and move its blocks to their new positions.

        Afterwards ``_kv_tokens`` holds the prefix and the blocks that follow it directly;
        the later blocks sit in the cache at their final positions, past a gap. Returns
        False (and leaves an empty cache) if llama.cpp refused a removal.
        """
        mem = ctx.memory
        old = self._kv_tokens
        n_old = len(old)
        cursor = plan.prefix
        ok = True
        for start, end in sorted((b.old_start, b.old_end) for b in plan.blocks):
            if start > cursor:
                ok = ok and bool(llama_cpp.llama_memory_seq_rm(mem, _MAIN_SEQ, cursor, start))
            cursor = max(cursor, end)
        if cursor < n_old or not plan.blocks:
            ok = ok and bool(llama_cpp.llama_memory_seq_rm(mem, _MAIN_SEQ, cursor, -1))
        if not ok:
            log.warning("llama.cpp could not trim the cache; evaluating from scratch")
            llama_cpp.llama_memory_clear(mem, False)
            self._kv_tokens, self._exact_len, self._shift_pending = [], 0, False
            self._dirty = True
            return False
        if plan.prefix < n_old or plan.blocks:
            self._dirty = True
        # Two steps, so that no block lands on positions another one has yet to leave:
        # first every moving block far past the end, then all of them back by that offset.
        offset = n_old + plan.n_target + 1
        moved = False
        for block in plan.blocks:
            if block.delta:
                llama_cpp.llama_memory_seq_add(mem, _MAIN_SEQ, block.old_start, block.old_end, offset + block.delta)
                moved = True
        if moved:
            llama_cpp.llama_memory_seq_add(mem, _MAIN_SEQ, offset, -1, -offset)
            self._shift_pending = True
        kept = [*old[: plan.prefix]]
        self._exact_len = min(self._exact_len, plan.prefix)
        for block in plan.blocks:
            if block.new_start != len(kept):
                break
            kept.extend(old[block.old_start : block.old_end])
        self._kv_tokens = kept
        return True

    def _append(self, tokens: Sequence[int], *, exact: bool) -> None:
        """Record tokens now at the end of sequence 0; fresh ones extend the exact part
        only if everything before them is exact."""
        if exact and self._exact_len == len(self._kv_tokens):
            self._exact_len += len(tokens)
        self._kv_tokens.extend(tokens)

    def _chunks(self, start: int, end: int, batch: int | None = None) -> list[tuple[int, int]]:
        """Batches for ``[start, end)``, of ``batch`` tokens at most (default: the
        context's). After a move, the first decode is one token long and not abortable
        (see ``_shift_pending``), so a cancel still stops within a token."""
        size = self._n_batch if batch is None else max(1, min(batch, self._n_batch))
        spans: list[tuple[int, int]] = []
        position = start
        if self._shift_pending and end > start:
            spans.append((start, start + 1))
            position += 1
        while position < end:
            spans.append((position, min(end, position + size)))
            position = spans[-1][1]
        return spans

    def _decode(
        self,
        ctx: _internals.LlamaContext,
        tokens: Sequence[int],
        position: int,
        seq_id: int,
        cancel: CancelToken | None,
        logits_all: bool = False,
    ) -> int:
        """One llama_decode of ``tokens`` at ``position``… in ``seq_id``; llama.cpp's code.

        ``LlamaBatch.set_batch`` always writes sequence 0, hence this filler. The abort
        callback is installed only here: ggml calls it after every graph node (~900 per
        token for 3B), a trip into Python each, which costs ~4 % of generation speed.
        """
        _, _, batch = self._require()
        raw = batch.batch
        n = len(tokens)
        raw.n_tokens = n
        for i, token in enumerate(tokens):
            raw.token[i] = token
            raw.pos[i] = position + i
            raw.seq_id[i][0] = seq_id
            raw.n_seq_id[i] = 1
            raw.logits[i] = logits_all
        raw.logits[n - 1] = True
        abortable = cancel is not None and not self._shift_pending
        if abortable:
            self._abort_flag = cancel
            llama_cpp.llama_set_abort_callback(ctx.ctx, self._abort_cb, None)
        try:
            rc = int(llama_cpp.llama_decode(ctx.ctx, raw))
        finally:
            if abortable:
                self._abort_flag = None
                llama_cpp.llama_set_abort_callback(ctx.ctx, self._no_abort_cb, None)
        if rc == 0:
            self._shift_pending = False
            self._dirty = True
            self._decoded_tokens += n
        return rc

    def _fill_gap(
        self, ctx: _internals.LlamaContext, tokens: Sequence[int], start: int, end: int, cancel: CancelToken | None
    ) -> None:
        """Evaluate ``tokens[start:end]`` in front of a moved block that already sits after
        them in sequence 0.

        llama.cpp accepts a sequence's new tokens only at its end, so they are decoded in
        the scratch sequence instead: it gets sequence 0's cells before ``start`` (a
        metadata copy — in a unified cache one cell serves several sequences), the new
        tokens attend to exactly those, and their cells then join sequence 0. The moved
        block's cells belong to sequence 0 only, so nothing here shifts them.
        """
        mem = ctx.memory
        llama_cpp.llama_memory_seq_rm(mem, _SCRATCH_SEQ, -1, -1)
        llama_cpp.llama_memory_seq_cp(mem, _MAIN_SEQ, _SCRATCH_SEQ, 0, start)
        for chunk_start, chunk_end in self._chunks(start, end):
            if cancel is not None and cancel.cancelled:
                raise _Cancelled
            rc = self._decode(ctx, tokens[chunk_start:chunk_end], chunk_start, _SCRATCH_SEQ, cancel)
            if rc != 0:
                if rc == 2:
                    raise _Cancelled
                raise ModelLoadError(f"llama.cpp failed to evaluate the prompt (code {rc})")
        llama_cpp.llama_memory_seq_cp(mem, _SCRATCH_SEQ, _MAIN_SEQ, start, end)
        llama_cpp.llama_memory_seq_rm(mem, _SCRATCH_SEQ, -1, -1)

    def _append_decoded(
        self, ctx: _internals.LlamaContext, tokens: Sequence[int], cancel: CancelToken | None,
        batch: int | None = None,
    ) -> None:
        """Evaluate ``tokens`` at the end of sequence 0, in batches."""
        base = len(self._kv_tokens)
        for chunk_start, chunk_end in self._chunks(0, len(tokens), batch):
            if cancel is not None and cancel.cancelled:
                raise _Cancelled
            chunk = tokens[chunk_start:chunk_end]
            rc = self._decode(ctx, chunk, base + chunk_start, _MAIN_SEQ, cancel)
            if rc != 0:
                self._resync_after_failed_decode(ctx, [*self._kv_tokens, *chunk])
                if rc == 2:
                    raise _Cancelled
                raise ModelLoadError(f"llama.cpp failed to evaluate the prompt (code {rc})")
            self._append(chunk, exact=True)

    def _resync_after_failed_decode(self, ctx: _internals.LlamaContext, tokens: Sequence[int]) -> None:
        """An aborted decode keeps the ubatches it finished: trust llama.cpp's positions."""
        kept = llama_cpp.llama_memory_seq_pos_max(ctx.memory, _MAIN_SEQ) + 1
        kept = max(0, min(kept, len(tokens)))
        known = len(self._kv_tokens)
        self._append(tokens[known:kept], exact=True)
        del self._kv_tokens[kept:]
        self._exact_len = min(self._exact_len, kept)
        llama_cpp.llama_memory_seq_rm(ctx.memory, _MAIN_SEQ, kept, -1)
        self._dirty = True

    def _apply_pending_shift(self) -> None:
        """Re-evaluate the last cached token, so that llama.cpp rotates the keys of moved
        blocks now (before a snapshot copies them)."""
        if not self._shift_pending or not self._kv_tokens:
            self._shift_pending = False
            return
        _, ctx, _ = self._require()
        last = len(self._kv_tokens) - 1
        token = self._kv_tokens[last]
        exact = self._exact_len == len(self._kv_tokens)
        llama_cpp.llama_memory_seq_rm(ctx.memory, _MAIN_SEQ, last, -1)
        del self._kv_tokens[last:]
        self._exact_len = min(self._exact_len, last)
        rc = self._decode(ctx, [token], last, _MAIN_SEQ, None)
        if rc != 0:
            self._resync_after_failed_decode(ctx, [*self._kv_tokens, token])
            raise ModelLoadError(f"llama.cpp failed to decode a token (code {rc})")
        self._append([token], exact=exact)

    def _decode_one(self, token: int) -> None:
        _, ctx, _ = self._require()
        rc = self._decode(ctx, [token], len(self._kv_tokens), _MAIN_SEQ, None)
        if rc != 0:
            self._resync_after_failed_decode(ctx, [*self._kv_tokens, token])
            raise ModelLoadError(f"llama.cpp failed to decode a token (code {rc})")
        self._append([token], exact=True)

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
        full = self.build_prompt(request)
        prompt = self._fit_latency_budget(request, full)
        narrowed = prompt is not full and prompt.tokens != full.tokens
        tokens = prompt.tokens
        if not tokens:  # empty document in prefix-only mode: nothing to condition on
            model, _, _ = self._require()
            tokens = [llama_cpp.llama_vocab_bos(model.vocab)]
        try:
            reuse = self._evaluate(tokens, cancel, document=request.document)
        except _Cancelled:
            stats = self._stats(len(tokens), None, 0, started, time.perf_counter(), None, None)
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
        stats = self._stats(len(tokens), reuse, len(generated), started, prompt_done, first_token_at, last_token_at)
        self._note_prompt_speed(stats)
        return CompletionResult(text, prompt, stop_reason, stats, tuple(generated), narrowed=narrowed)

    # ------------------------------------------------------ latency budget
    @property
    def prompt_speed(self) -> float:
        """Tokens/s this engine evaluates prompts at: measured on its own larger evaluations,
        or, before any, a first guess from the model's size (parameter-tokens/s per thread,
        calibrated on a 2-core EPYC: the 3B-shaped Q4_K_M read ~30 tokens/s)."""
        if self._measured_prompt_tps is not None:
            return self._measured_prompt_tps
        n_params = self._info.n_params if self._info is not None else 0
        return PARAM_TOKENS_PER_S_PER_THREAD * self._config.threads / max(1, n_params)

    def _note_prompt_speed(self, stats: CompletionStats) -> None:
        if stats.evaluated >= MIN_TOKENS_FOR_SPEED and stats.prompt_tps > 0:
            previous = self._measured_prompt_tps
            self._measured_prompt_tps = (
                stats.prompt_tps if previous is None else 0.5 * previous + 0.5 * stats.prompt_tps
            )

    def _fit_latency_budget(self, request: CompletionRequest, full: FimPrompt) -> FimPrompt:
        """``full``, or a window of the document around the caret when ``full`` would not
        reach its first token within ``request.latency_budget_ms`` (see
        ``CompletionRequest``).

        The window the document had last time is kept while the caret is inside it and it
        is within budget (or cheaper than a new one): its edges then stay where they are,
        and the cache keeps everything but the edit (``app.core.prompt_window``). Otherwise
        a new window is cut around the caret, as large as the budget affords.
        """
        if request.latency_budget_ms is None or self._builder is None:
            self._remember_window(request.document, FULL_PROMPT)
            return full
        affordable = int(self.prompt_speed * request.latency_budget_ms / 1000)
        if self._estimate_evaluated(request.document, full.tokens) <= affordable:
            self._remember_window(request.document, FULL_PROMPT)
            return full
        sticky: tuple[FimPrompt, PromptWindow, int] | None = None  # prompt, window, cost
        window = self._windows.get(request.document)
        if window is not None:
            built = self._window_prompt(request, window)
            if built is not None:
                sticky = (*built, self._estimate_evaluated(request.document, built[0].tokens))
        fresh = self._window_prompt(request, PromptWindow(0, 0), max(MIN_NARROW_PROMPT_TOKENS, affordable))
        if fresh is None:
            return full  # not even the frame fits: the whole prompt it is
        prompt, window = fresh
        # The old window, unless it shrank to a sliver (an undo took its lines away): it
        # costs what the budget allows, or at least no more than a new one.
        if sticky is not None and len(sticky[0].tokens) >= STICKY_MIN_SHARE * len(prompt.tokens) and (
            sticky[2] <= affordable or sticky[2] <= self._estimate_evaluated(request.document, prompt.tokens)
        ):
            prompt, window = sticky[0], sticky[1]
        if prompt.tokens == full.tokens:
            self._remember_window(request.document, FULL_PROMPT)
            return full
        self._remember_window(request.document, window)
        log.info(
            "latency budget %.0f ms at %.0f tok/s (%d tokens): prompt narrowed from %d to %d tokens, %s window"
            " (kept window: %s)",
            request.latency_budget_ms, self.prompt_speed, affordable, len(full.tokens), len(prompt.tokens),
            "the kept" if sticky is not None and prompt is sticky[0] else "a new",
            "none" if sticky is None else f"{len(sticky[0].tokens)} tokens, {sticky[2]} to evaluate",
        )
        return prompt

    def _window_prompt(
        self, request: CompletionRequest, window: PromptWindow, max_tokens: int | None = None
    ) -> tuple[FimPrompt, PromptWindow] | None:
        """The prompt for the part of the document ``window`` covers, and the window it
        really covers (``max_tokens`` may cut it further around the caret); None when the
        caret has left ``window`` or the frame alone does not fit.

        A window leaves the repository context out: it is the small prompt that must be
        fast; the repository block joins with the whole prompt, in idle time."""
        assert self._builder is not None
        parts = window_parts(request.prefix, request.suffix, window)
        if parts is None:
            return None
        prefix, suffix = parts
        n_ctx = self.n_ctx if max_tokens is None else min(self.n_ctx, max_tokens + request.max_tokens)
        try:
            prompt = self._builder.build(
                prefix, suffix, PromptBudget(n_ctx=n_ctx, max_new_tokens=request.max_tokens), request.layout,
            )
        except ValueError:
            return None
        tail = 0 if prompt.layout is Layout.PREFIX_ONLY else window.tail_cut + prompt.suffix_chars_dropped
        return prompt, PromptWindow(window.head_cut + prompt.prefix_chars_dropped, tail)

    def _remember_window(self, document: str | None, window: PromptWindow) -> None:
        self._windows[document] = window
        self._windows.move_to_end(document)
        while len(self._windows) > MAX_WINDOWS:
            self._windows.popitem(last=False)

    def window_of(self, document: str | None) -> PromptWindow | None:
        """The part of ``document`` its last prompt covered (None: none yet)."""
        return self._windows.get(document)

    def _estimate_evaluated(self, document: str | None, tokens: Sequence[int]) -> int:
        """How many of ``tokens`` a request would evaluate (a dry run of the reuse plan:
        nothing is moved, restored or saved)."""
        mode = self._reuse_mode
        plans = [self._plan(self._kv_tokens, self._exact_len, tokens, mode, True)]
        snapshot = self._snapshots.get(document) if document is not None else None
        if snapshot is not None:
            plans.append(self._plan(snapshot.tokens, snapshot.exact_len, tokens, mode, True))
        return min(plan.evaluated for plan in plans)

    def prefill(self, request: CompletionRequest, cancel: CancelToken | None = None) -> PrefillResult:
        """Evaluate ``request``'s prompt without generating, so that the completion that
        follows costs one token.

        For idle time: when a file opens or the caret lands, before anyone asks. The last
        prompt token is left out: ``complete`` evaluates it anyway for fresh logits. A
        cancel (a user request arriving) stops it inside the running batch, and what was
        evaluated until then stays in the cache for that request to reuse.

        With a ``latency_budget_ms`` the prompt the next request would use comes first
        (the window at the caret), then the window grows towards the whole prompt in
        steps of ~``GROW_STEP_SECONDS``: a cancel loses only the step under way. In
        ``ReuseMode.EXACT`` growth cannot keep what follows an inserted line, so the whole
        prompt follows in one step.
        """
        started = time.perf_counter()
        full = self.build_prompt(request)
        prompt = self._fit_latency_budget(request, full)
        decoded_before = self._decoded_tokens
        window = self._windows.get(request.document)
        while True:
            step_before = self._decoded_tokens
            done = self._prefill_prompt(prompt, request.document, cancel, started)
            log.info("prefill of %d tokens: %d evaluated%s", len(prompt.tokens), self._decoded_tokens - step_before,
                     ", cancelled" if done.cancelled else "")
            # Every token decoded counts, a cancelled step's kept batches included.
            stats = dataclasses.replace(done.stats, evaluated=self._decoded_tokens - decoded_before)
            if done.cancelled or prompt is full or not request.prefill_widens:
                if done.cancelled and window is not None:
                    self._remember_window(request.document, window)  # what the cache still holds
                return PrefillResult(prompt, stats, done.cancelled, narrowed=prompt.tokens != full.tokens)
            window = self._windows.get(request.document)
            prompt = self._next_growth_step(request, full)

    def _prefill_prompt(
        self, prompt: FimPrompt, document: str | None, cancel: CancelToken | None, started: float
    ) -> PrefillResult:
        tokens = prompt.tokens
        if len(tokens) < 2:
            return PrefillResult(prompt, self._stats(len(tokens), None, 0, started, started, None, None), False)
        try:
            reuse = self._evaluate(tokens[:-1], cancel, document=document, need_logits=False,
                                   batch=PREFILL_BATCH_TOKENS)
        except _Cancelled:
            stats = self._stats(len(tokens) - 1, None, 0, started, time.perf_counter(), None, None)
            return PrefillResult(prompt, stats, cancelled=True)
        stats = self._stats(len(tokens) - 1, reuse, 0, started, time.perf_counter(), None, None)
        self._note_prompt_speed(stats)
        return PrefillResult(prompt, stats, cancelled=False)

    def _next_growth_step(self, request: CompletionRequest, full: FimPrompt) -> FimPrompt:
        """The document's window widened by one step, or ``full`` once the window would
        cover as much as the whole prompt (the window is remembered either way)."""
        window = self._windows.get(request.document)
        if window is None or window.full or self._reuse_mode is ReuseMode.EXACT:
            self._remember_window(request.document, FULL_PROMPT)
            return full
        step_tokens = max(MIN_GROW_STEP_TOKENS, int(self.prompt_speed * GROW_STEP_SECONDS))
        wider = grow(request.prefix, request.suffix, window, int(step_tokens * CHARS_PER_TOKEN))
        built = self._window_prompt(request, wider) if not wider.whole_file else None
        if built is None or built[1] != wider or len(built[0].tokens) >= len(full.tokens):
            self._remember_window(request.document, FULL_PROMPT)
            return full  # the window reached the context's limits or the whole file
        self._remember_window(request.document, wider)
        return built[0]

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
        reuse: _Reuse | None,
        n_generated: int,
        started: float,
        prompt_done: float,
        first_token_at: float | None,
        last_token_at: float | None,
    ) -> CompletionStats:
        """``reuse`` None: cancelled during the prompt (nothing is claimed reused)."""
        reuse = reuse or _Reuse(0, 0, 0, 0, ())
        prompt_s = prompt_done - started
        gen_s = (last_token_at - first_token_at) if first_token_at and last_token_at else 0.0
        return CompletionStats(
            prompt_tokens=n_prompt,
            cached_tokens=reuse.exact + reuse.shifted,
            generated_tokens=n_generated,
            prompt_ms=prompt_s * 1000,
            ttft_ms=((first_token_at or prompt_done) - started) * 1000,
            prompt_tps=reuse.evaluated / prompt_s if prompt_s > 0 and reuse.evaluated else 0.0,
            gen_tps=(n_generated - 1) / gen_s if gen_s > 0 and n_generated > 1 else 0.0,
            ctx_used=len(self._kv_tokens),
            ctx_size=self.n_ctx,
            reused_exact=reuse.exact,
            reused_shifted=reuse.shifted,
            restored=reuse.restored,
            evaluated=reuse.evaluated,
            fresh_spans=reuse.fresh_spans,
        )

    # ---------------------------------------------------------- scoring
    def score(
        self,
        context: Sequence[int],
        targets: Sequence[int],
        cancel: CancelToken | None = None,
        reuse: ReuseMode = ReuseMode.EXACT,
    ) -> list[TokenScore]:
        """Teacher-force ``targets`` after ``context``; the model's view at each position.

        Used for quant comparison: top-1 agreement with a reference completion and the
        log-likelihood of a buffer, both from real logits rather than generated text.
        ``reuse`` is EXACT by default, whatever the engine's mode, so that a measurement
        never depends on what the cache held before; FAST measures what moved blocks do
        to the predictions (the edit-session benchmark's quality check).
        """
        model, ctx, _ = self._require()
        if not targets:
            return []
        n_vocab = model.n_vocab()
        sequence = [*context, *targets]
        if len(sequence) > self.n_ctx:
            raise ValueError(f"{len(sequence)} tokens do not fit the context of {self.n_ctx}")
        # Reuse the cache for the context; then evaluate the targets with logits everywhere.
        first = max(1, len(context))
        try:
            self._evaluate(sequence[:first], cancel, mode=reuse)
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
            rc = self._decode(ctx, chunk, position, _MAIN_SEQ, None, logits_all=True)
            if rc != 0:
                self._resync_after_failed_decode(ctx, sequence)
                raise ModelLoadError(f"llama.cpp failed to evaluate (code {rc})")
            self._append(chunk, exact=True)
            pending_logits = [
                np.ctypeslib.as_array(ctx.get_logits_ith(i), shape=(n_vocab,)).copy() for i in range(len(chunk))
            ]
            position += len(chunk)
        return scores

