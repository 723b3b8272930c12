"""The vendored HumanEval-Infilling problems and the selection a run uses.

The files ship inside the app (``resources/human-eval-infilling``), so scoring works
offline and every machine scores the very same problems.
"""

from __future__ import annotations

import enum
import gzip
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.core.errors import StarpadError

DATA_DIR = Path(__file__).resolve().parents[3] / "resources" / "human-eval-infilling"


class DatasetError(StarpadError):
    """The vendored data is missing or damaged (a broken installation, not user input)."""


class Subset(str, enum.Enum):
    SINGLE_LINE = "single-line"
    MULTI_LINE = "multi-line"
    RANDOM_SPAN = "random-span"
    RANDOM_SPAN_LIGHT = "random-span-light"

    @property
    def file_name(self) -> str:
        return f"HumanEval-{self.task_prefix}.jsonl.gz"

    @property
    def task_prefix(self) -> str:
        """How its task ids start (``SingleLineInfilling/HumanEval/0/L0``)."""
        return {
            Subset.SINGLE_LINE: "SingleLineInfilling",
            Subset.MULTI_LINE: "MultiLineInfilling",
            Subset.RANDOM_SPAN: "RandomSpanInfilling",
            Subset.RANDOM_SPAN_LIGHT: "RandomSpanInfillingLight",
        }[self]

    @property
    def single_line(self) -> bool:
        """Single-line problems are generated in single-line mode (stop at the newline)."""
        return self is Subset.SINGLE_LINE


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str  # the code before the gap
    suffix: str  # the code after it
    canonical_solution: str
    test: str
    entry_point: str

    @property
    def task(self) -> str:
        """The HumanEval task (``HumanEval/12``) several problems cut from the same code."""
        parts = self.task_id.split("/")
        return "/".join(parts[1:3]) if len(parts) >= 3 else self.task_id

    def program(self, completion: str) -> str:
        """What runs: upstream's exact concatenation, so our scores compare with theirs."""
        return self.prompt + completion + self.suffix + "\n" + self.test + "\ncheck(" + self.entry_point + ")"


@lru_cache(maxsize=8)
def load_problems(subset: Subset, data_dir: Path = DATA_DIR) -> tuple[Problem, ...]:
    """Every problem of ``subset`` in the file's order (tasks in order, their problems together)."""
    path = data_dir / subset.file_name
    try:
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            rows = [json.loads(line) for line in stream if line.strip()]
        return tuple(
            Problem(r["task_id"], r["prompt"], r["suffix"], r["canonical_solution"], r["test"], r["entry_point"])
            for r in rows
        )
    except FileNotFoundError:
        raise DatasetError(f"the HumanEval-Infilling data is missing: {path} (a broken installation)") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"the HumanEval-Infilling data is damaged: {path} ({exc})") from None


@dataclass(frozen=True)
class Selection:
    """Which problems a run uses: all, the first ``limit``, or ``sample`` drawn with ``seed``.

    Its ``key`` names the run folder, so a changed selection starts a new run.
    """

    limit: int | None = None
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.sample is not None:
            raise ValueError("choose either a limit or a sample, not both")
        for name, value in (("limit", self.limit), ("sample", self.sample)):
            if value is not None and value < 1:
                raise ValueError(f"the {name} must be at least 1, not {value}")

    @property
    def key(self) -> str:
        if self.limit is not None:
            return f"first{self.limit}"
        if self.sample is not None:
            return f"sample{self.sample}-seed{self.seed}"
        return "all"

    def describe(self, total: int) -> str:
        if self.limit is not None:
            return f"the first {min(self.limit, total):,} of {total:,} problems"
        if self.sample is not None:
            return f"{min(self.sample, total):,} of {total:,} problems drawn with seed {self.seed}"
        return f"all {total:,} problems"

    def apply(self, problems: Sequence[Problem]) -> list[Problem]:
        """The chosen problems, in the file's order: problems of one task stay together,
        so the KV cache reuses the task's shared code from one problem to the next."""
        if self.limit is not None:
            return list(problems[: self.limit])
        if self.sample is not None:
            if self.sample >= len(problems):
                return list(problems)
            chosen = set(random.Random(self.seed).sample(range(len(problems)), self.sample))
            return [p for i, p in enumerate(problems) if i in chosen]
        return list(problems)


def group_by_task(problems: Iterable[Problem]) -> list[Problem]:
    """Problems ordered so that those of one task are consecutive (stable otherwise)."""
    first_seen: dict[str, int] = {}
    items = list(problems)
    for index, problem in enumerate(items):
        first_seen.setdefault(problem.task, index)
    return sorted(items, key=lambda p: first_seen[p.task])
