"""Fill-in-the-middle prompts, built as token ids ourselves.

llama-cpp-python's ``create_completion(suffix=…)`` emits token 0 where StarCoder2's FIM
tokens belong, so the sequence is assembled here from the vocabulary's FIM ids. The
layout and the budget cuts are chosen for KV-cache reuse while the user types:

* SPM (``<fim_prefix><fim_suffix>`` suffix ``<fim_middle>`` prefix) puts the text before
  the caret last, so a typed character only appends tokens: everything evaluated before
  stays valid. It is the default. PSM (``<fim_prefix>`` prefix ``<fim_suffix>`` suffix
  ``<fim_middle>``) is selectable; StarCoder was trained on both (bigcode, SPM rate 0.5).
* When the prefix is longer than its budget its start moves in whole blocks of lines,
  not per keystroke, so consecutive prompts share their beginning.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.core.model_info import FimTokenIds

Tokenize = Callable[[str], list[int]]
#: Repository parts whose tokens are kept (a block holds a few dozen at most).
REPO_TOKEN_CACHE = 128


class Layout(str, enum.Enum):
    SPM = "spm"
    PSM = "psm"
    PREFIX_ONLY = "prefix"  # models without FIM tokens: the text after the caret is unused


class SegmentKind(str, enum.Enum):
    SPECIAL = "special"
    REPO = "repo"
    PREFIX = "prefix"
    SUFFIX = "suffix"


@dataclass(frozen=True)
class Segment:
    """A run of the prompt with one role: the inspector shows them, the stats count them."""

    kind: SegmentKind
    tokens: tuple[int, ...]
    label: str = ""


@dataclass(frozen=True)
class RepoFile:
    """Another file offered as repository-level context (``app.core.repo_context`` picks
    them): laid out as ``<file_sep>``path``\\n``text, whatever ``lines`` says."""

    path: str
    text: str
    #: 1-based first and last line when ``text`` is a chunk of the file; None: the whole file.
    lines: tuple[int, int] | None = None


@dataclass(frozen=True)
class FimPrompt:
    layout: Layout
    segments: tuple[Segment, ...]
    prefix_chars_dropped: int = 0
    suffix_chars_dropped: int = 0
    repo_files_used: tuple[str, ...] = field(default=())
    #: Indices into the ``repo_files`` given to ``build`` of those in the prompt.
    repo_file_indices: tuple[int, ...] = field(default=())

    @property
    def tokens(self) -> list[int]:
        return [t for segment in self.segments for t in segment.tokens]

    def count(self, kind: SegmentKind) -> int:
        return sum(len(s.tokens) for s in self.segments if s.kind is kind)


@dataclass(frozen=True)
class PromptBudget:
    """How many tokens the prompt may use and how they are shared."""

    n_ctx: int
    max_new_tokens: int
    prefix_share: float = 0.75
    #: The prefix's start moves by this many lines at a time (cache-friendly cuts).
    prefix_step_lines: int = 32
    #: At most this share of the prompt budget goes to other files.
    repo_share: float = 0.5

    @property
    def reserved_tokens(self) -> int:
        """Room kept for generation: ``max_new_tokens``, but never more than half the
        context, so a small context with a long completion still gets a prompt (the
        completion then ends early with ``context_full`` instead of the request failing)."""
        return min(max(1, self.max_new_tokens), self.n_ctx // 2)

    @property
    def prompt_tokens(self) -> int:
        return max(0, self.n_ctx - self.reserved_tokens)

    @property
    def repo_tokens(self) -> int:
        """Room for the repository block from ``<repo_name>`` up to (not including) the
        current file's ``<file_sep>``: what ``app.core.repo_context`` plans with."""
        return int((self.prompt_tokens - 3) * self.repo_share) - 1


class PromptBuilder:
    """Turn (prefix, suffix, context files) into the exact token ids the model sees."""

    def __init__(self, tokenize: Tokenize, fim: FimTokenIds) -> None:
        self._tokenize = tokenize
        self._fim = fim
        #: Tokens of recent repository parts: the block is the same request after request
        #: (it changes only with the set of files), so it is tokenized once, not per keystroke.
        self._repo_tokens: OrderedDict[tuple[str, str], list[int]] = OrderedDict()

    @property
    def fim(self) -> FimTokenIds:
        return self._fim

    def build(
        self,
        prefix: str,
        suffix: str,
        budget: PromptBudget,
        layout: Layout = Layout.SPM,
        *,
        path: str | None = None,
        repo_name: str | None = None,
        repo_files: Sequence[RepoFile] = (),
    ) -> FimPrompt:
        fim = self._fim
        if not fim.can_fill_middle:
            layout = Layout.PREFIX_ONLY
        use_repo = layout is not Layout.PREFIX_ONLY and fim.can_use_repo_context and (repo_files or repo_name)
        header = f"{path}\n" if use_repo and path else ""

        n_special = {Layout.PREFIX_ONLY: 0, Layout.SPM: 3, Layout.PSM: 3}[layout]
        available = budget.prompt_tokens - n_special
        repo_segments: list[Segment] = []
        used_indices: list[int] = []
        if use_repo:
            # One token stays for our own file's <file_sep>, which opens the FIM part.
            repo_segments, used_indices = self._repo_segments(
                repo_name or "", repo_files, int(available * budget.repo_share) - 1
            )
            repo_segments.append(Segment(SegmentKind.SPECIAL, (fim.sep,), "<file_sep>"))  # type: ignore[arg-type]
            if sum(len(s.tokens) for s in repo_segments) > available * budget.repo_share:
                # A repository name too long for a small context: the code matters more.
                repo_segments, used_indices, header = [], [], ""
            available -= sum(len(s.tokens) for s in repo_segments)
        used_files = [repo_files[i].path for i in used_indices]
        header_tokens = self._tokenize(header) if header else []
        if len(header_tokens) > available // 4:
            header_tokens = []  # likewise a file path that would crowd out the code
        available -= len(header_tokens)
        if available <= 0:
            raise ValueError(f"the context ({budget.n_ctx} tokens) leaves no room for a prompt")

        if layout is Layout.PREFIX_ONLY:
            prefix_tokens, dropped = self._fit_prefix(prefix, available, budget.prefix_step_lines)
            return FimPrompt(layout, (Segment(SegmentKind.PREFIX, tuple(prefix_tokens)),), dropped, len(suffix))

        suffix_full = self._tokenize(suffix) if suffix else []
        prefix_full_len = len(self._tokenize(prefix)) if prefix else 0
        suffix_cap = int(available * (1 - budget.prefix_share))
        prefix_cap = available - suffix_cap
        # Give a side's unused share to the other.
        if len(suffix_full) < suffix_cap:
            prefix_cap = available - len(suffix_full)
        elif prefix_full_len < prefix_cap:
            suffix_cap = available - prefix_full_len
        suffix_tokens, suffix_dropped = self._fit_suffix(suffix, suffix_full, suffix_cap)
        prefix_tokens, prefix_dropped = self._fit_prefix(prefix, prefix_cap, budget.prefix_step_lines)
        prefix_tokens = header_tokens + prefix_tokens

        pre = Segment(SegmentKind.SPECIAL, (fim.pre,), "<fim_prefix>")  # type: ignore[arg-type]
        suf = Segment(SegmentKind.SPECIAL, (fim.suf,), "<fim_suffix>")  # type: ignore[arg-type]
        mid = Segment(SegmentKind.SPECIAL, (fim.mid,), "<fim_middle>")  # type: ignore[arg-type]
        pfx = Segment(SegmentKind.PREFIX, tuple(prefix_tokens))
        sfx = Segment(SegmentKind.SUFFIX, tuple(suffix_tokens))
        body = (pre, suf, sfx, mid, pfx) if layout is Layout.SPM else (pre, pfx, suf, sfx, mid)
        return FimPrompt(layout, (*repo_segments, *body), prefix_dropped, suffix_dropped, tuple(used_files),
                         tuple(used_indices))

    def _repo_segments(
        self, repo_name: str, files: Sequence[RepoFile], cap: int
    ) -> tuple[list[Segment], list[int]]:
        """StarCoder2's repository layout: <repo_name>name<file_sep>path\\ncode…, each part a
        whole file or a chunk as given (never cut here: a cut file teaches the model a
        truncated file). ``files`` come far first, near last (``app.core.repo_context``):
        when they do not all fit, the earliest are left out, so the most relevant stay."""
        fim = self._fim
        segments = [
            Segment(SegmentKind.SPECIAL, (fim.rep,), "<repo_name>"),  # type: ignore[arg-type]
            Segment(SegmentKind.REPO, tuple(self._tokenize(repo_name)), "repo name"),
        ]
        used = sum(len(s.tokens) for s in segments)
        tokenized = [self._tokenize_part(repo_file) for repo_file in files]
        kept: list[int] = []
        for index in range(len(files) - 1, -1, -1):
            if used + 1 + len(tokenized[index]) <= cap:
                kept.append(index)
                used += 1 + len(tokenized[index])
        kept.reverse()
        for index in kept:
            segments.append(Segment(SegmentKind.SPECIAL, (fim.sep,), "<file_sep>"))  # type: ignore[arg-type]
            segments.append(Segment(SegmentKind.REPO, tuple(tokenized[index]), files[index].path))
        return segments, kept

    def _tokenize_part(self, repo_file: RepoFile) -> list[int]:
        key = (repo_file.path, repo_file.text)
        tokens = self._repo_tokens.get(key)
        if tokens is None:
            tokens = self._repo_tokens[key] = self._tokenize(f"{repo_file.path}\n{repo_file.text}")
            while len(self._repo_tokens) > REPO_TOKEN_CACHE:
                self._repo_tokens.popitem(last=False)
        else:
            self._repo_tokens.move_to_end(key)
        return tokens

    def _fit_prefix(self, prefix: str, cap: int, step_lines: int) -> tuple[list[int], int]:
        """Keep the end of the prefix; drop whole blocks of lines from its start."""
        tokens = self._tokenize(prefix) if prefix else []
        if len(tokens) <= cap:
            return tokens, 0
        starts = _line_starts(prefix)
        block_starts = starts[:: max(1, step_lines)]
        # The smallest block-aligned start that fits (binary search over block starts).
        lo, hi = 0, len(block_starts)
        best: tuple[list[int], int] | None = None
        while lo < hi:
            mid = (lo + hi) // 2
            candidate = self._tokenize(prefix[block_starts[mid] :])
            if len(candidate) <= cap:
                best, hi = (candidate, block_starts[mid]), mid
            else:
                lo = mid + 1
        if best is None:
            # Even the last block is too long (huge lines): single lines, then characters.
            line_fit: tuple[list[int], int] | None = None
            for start in starts[starts.index(block_starts[-1]) :]:
                candidate = self._tokenize(prefix[start:])
                if len(candidate) <= cap:
                    line_fit = candidate, start
                    break
            if line_fit is not None and (2 * len(line_fit[0]) >= cap or line_fit[1] == 0):
                return line_fit
            # Whole lines would leave most of the room empty (the line before is longer
            # than the cap): cut inside that line, between characters, so that what is
            # dropped is still known exactly.
            hi = line_fit[1] if line_fit is not None else len(prefix)
            lo = prefix.rfind("\n", 0, hi - 1) + 1 if line_fit is not None else starts[-1]
            while lo < hi:
                mid = (lo + hi) // 2
                if len(self._tokenize(prefix[mid:])) <= cap:
                    hi = mid
                else:
                    lo = mid + 1
            return (self._tokenize(prefix[lo:]) if lo < len(prefix) else []), lo
        return best[0], best[1]

    def _fit_suffix(self, suffix: str, tokens: list[int], cap: int) -> tuple[list[int], int]:
        """Keep the start of the suffix; drop whole lines from its end."""
        if len(tokens) <= cap:
            return tokens, 0
        ends = [i + 1 for i, ch in enumerate(suffix) if ch == "\n"]
        lo, hi = 0, len(ends)
        best: tuple[list[int], int] = ([], len(suffix))
        while lo < hi:  # the largest line end that fits
            mid = (lo + hi) // 2
            candidate = self._tokenize(suffix[: ends[mid]])
            if len(candidate) <= cap:
                best, lo = (candidate, len(suffix) - ends[mid]), mid + 1
            else:
                hi = mid
        return best


def _line_starts(text: str) -> list[int]:
    return [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n" and i + 1 < len(text)]
