"""Run folders: results appended as they come, so a killed run resumes where it stopped.

A folder holds ``run.json`` (what was asked: model, subset, selection, parameters) and
``results.jsonl`` (one finished sample per line, flushed at once). Its default name is
made of the model file's fingerprint, the subset, the selection and a digest of the
generation parameters, so running the same thing again resumes, and changing anything
starts a new run beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("starpad.evaluation")

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
_CHUNK = 1024 * 1024


def evaluations_dir() -> Path:
    """Where runs live by default: beside the app's downloaded models."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "Starpad" / "evaluations"


def file_fingerprint(path: Path) -> str:
    """A digest of the file's size and its first, middle and last MiB.

    Hashing a whole 9 GB quant would take longer than a short run; two different quants
    of a model never share size and all three samples (their headers alone differ).
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as stream:
        for offset in sorted({0, max(0, size // 2 - _CHUNK // 2), max(0, size - _CHUNK)}):
            stream.seek(offset)
            digest.update(stream.read(_CHUNK))
    return digest.hexdigest()[:16]


def params_digest(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]


@dataclass
class SampleRecord:
    """One problem's outcome, as a line of ``results.jsonl``."""

    model: str
    task_id: str
    passed: bool
    reason: str
    seconds: float  # running the program
    completion: str
    exact_match: bool
    stop_reason: str = ""
    ttft_ms: float | None = None
    gen_tps: float | None = None
    generated_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("seconds", "ttft_ms", "gen_tps"):
            if isinstance(data[key], float):
                data[key] = round(data[key], 4)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SampleRecord:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


class RunStore:
    """One run folder. ``done()`` reads what a previous attempt finished."""

    def __init__(self, folder: Path, params: Mapping[str, Any]) -> None:
        self.folder = folder
        self.params = dict(params)

    @property
    def results_path(self) -> Path:
        return self.folder / RESULTS_FILE

    def open(self) -> dict[str, SampleRecord]:
        """Create the folder (or check it belongs to the same run) and return the samples
        already finished, by task id. A line cut short by a kill is dropped."""
        self.folder.mkdir(parents=True, exist_ok=True)
        run_file = self.folder / RUN_FILE
        if run_file.exists():
            try:
                previous = json.loads(run_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                previous = None
            if previous != self.params and self.results_path.exists():
                # --out pointed at a folder of another run: keep its results, start afresh beside them.
                self.results_path.rename(self.folder / f"results-{params_digest(previous or {})}.jsonl")
                log.info("run folder %s held another run; its results were renamed", self.folder)
        run_file.write_text(json.dumps(self.params, indent=2, sort_keys=True), encoding="utf-8")
        done: dict[str, SampleRecord] = {}
        if not self.results_path.exists():
            return done
        keep: list[str] = []
        with self.results_path.open(encoding="utf-8", errors="replace") as stream:
            for line in stream:
                try:
                    record = SampleRecord.from_json(json.loads(line))
                except (ValueError, TypeError):
                    continue  # the last line of a killed run, cut short
                done[record.task_id] = record
                keep.append(line if line.endswith("\n") else line + "\n")
        # Rewrite without a torn line, so appends start on a line of their own.
        self.results_path.write_text("".join(keep), encoding="utf-8")
        return done

    def append(self, record: SampleRecord) -> None:
        with self.results_path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            stream.flush()
