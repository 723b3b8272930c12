"""HumanEval-Infilling results of several quants as a README table and a chart.

    python -m bench.eval_report --run random-span-light=light.json \\
        --run "single-line (200 sampled, seed 1)=single.json" --out bench/results/eval-smollm2

Each ``--run`` is ``LABEL=FILE`` where FILE is what ``main.py eval --json`` printed; runs
with the same label (one model each) form one series. The
chart (matplotlib, offline) puts pass@1 with its 95 % interval against file size and
against generation speed: the two trades a user makes when picking a quant.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.core.model_info import model_info
from app.core.units import format_bytes


def load_run(label: str, path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    models = []
    for row in data["models"]:
        info = model_info(Path(row["model"]))
        models.append({**row, "quant": info.file_type, "file_bytes": info.size_bytes, "name": info.name})
    return {"label": label, "models": models}


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| Subset | Quant | File | pass@1 | 95 % interval | Exact match | n | First token | Gen tok/s | Run time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for m in run["models"]:
            seconds = m.get("seconds")
            took = "—" if seconds is None else (f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s")
            ttft = "—" if m["ttft_ms_mean"] is None else f"{m['ttft_ms_mean']:,.0f} ms"
            tps = "—" if m["gen_tps_mean"] is None else f"{m['gen_tps_mean']:,.0f}"
            lines.append(
                f"| {run['label']} | {m['quant']} | {format_bytes(m['file_bytes'])} | {m['pass_at_1']:.1%} | "
                f"{m['ci_low']:.1%}–{m['ci_high']:.1%} | {m['exact_match']:.1%} | {m['n']} | {ttft} | {tps} | {took} |"
            )
    return "\n".join(lines) + "\n"


def chart(runs: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for run, marker in zip(runs, "osD^v", strict=False):
        models = sorted(run["models"], key=lambda m: m["file_bytes"])
        y = [100 * m["pass_at_1"] for m in models]
        err = [[100 * (m["pass_at_1"] - m["ci_low"]) for m in models],
               [100 * (m["ci_high"] - m["pass_at_1"]) for m in models]]
        for ax, key, scale in ((axes[0], "file_bytes", 1e6), (axes[1], "gen_tps_mean", 1.0)):
            x = [(m[key] or 0) / scale for m in models]
            ax.errorbar(x, y, yerr=err, marker=marker, capsize=4, linestyle="-", label=run["label"])
            for xi, yi, m in zip(x, y, models, strict=True):
                ax.annotate(m["quant"], (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8)
    axes[0].set_xlabel("file size (MB)")
    axes[1].set_xlabel("generation speed (tokens/s, as run)")
    axes[0].set_ylabel("pass@1 (%), 95 % interval")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("HumanEval-Infilling pass@1 per quant (SmolLM2-135M, real weights, prefix only)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=FILE")
    parser.add_argument("--out", type=Path, required=True, help="path prefix: writes .json, .md and .png")
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    for spec in args.run:
        label, _, file = spec.partition("=")
        if not file:
            parser.error(f"--run wants LABEL=FILE, not {spec!r}")
        run = load_run(label, Path(file))
        same = next((r for r in runs if r["label"] == label), None)
        if same is None:
            runs.append(run)
        else:  # one model per eval run: runs of a subset share a series
            same["models"] += run["models"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(runs), encoding="utf-8")
    chart(runs, args.out.with_suffix(".png"))
    print(markdown(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
