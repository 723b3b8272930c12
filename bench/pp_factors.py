"""Which of Starpad's engine settings move prompt speed against llama-bench, measured.

On an AVX-512 machine the overhead scenario once measured Starpad's prompt processing at
0.896 of llama-bench (generation 0.979); on AVX2 machines both were >= 1.0. Starpad's
engine differs from llama-bench in a few settings, and each is a suspect: the context
size (the app's 16K vs llama-bench's prompt + generation), loading without mmap (and so
with llama.cpp's weight repacking into its own buffers), the abort callback installed
while a prompt is evaluated (ggml calls it after every graph node), and the second
sequence of the unified KV cache. This script measures each one separately, interleaved
with llama-bench in the same run:

    python -m bench.pp_factors --model MODEL.gguf [--rounds 3] [--threads N] [--out FILE]

Each configuration is one engine, loaded once; rounds go round-robin over all of them and
llama-bench, and the medians are compared. Run it on the machine that shows a gap.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.engine import CancelToken, CompletionRequest, Engine, EngineConfig, SamplingParams, default_threads
from app.core.fim import Layout
from bench.overhead import llama_bench_speed
from bench.workload import exact_token_prompt

log = logging.getLogger("starpad.bench.pp_factors")

N_PROMPT = 512


@dataclass(frozen=True)
class Factor:
    """One engine configuration: what differs from the overhead scenario's baseline."""

    name: str
    n_ctx: int = 1024
    use_mmap: bool = False
    abort_callback: bool = True


FACTORS = (
    Factor("baseline (overhead scenario: 1K context, no mmap, abort callback)"),
    Factor("16K context (the app's default)", n_ctx=16384),
    Factor("mmap (llama-bench's default load)", use_mmap=True),
    Factor("no abort callback", abort_callback=False),
)


def prompt_speed(engine: Engine, prompt: str, abort_callback: bool) -> float:
    """Tokens/s of one cold prompt; the abort callback is installed only with a cancel token."""
    engine.reset_cache()
    result = engine.complete(
        CompletionRequest(prefix=prompt, layout=Layout.PREFIX_ONLY, max_tokens=1, sampling=SamplingParams()),
        cancel=CancelToken() if abort_callback else None,
    )
    engine.reset_cache()
    return result.stats.prompt_tps


def run(model: Path, rounds: int, threads: int, llama_bench: Path) -> dict[str, object]:
    engines: list[tuple[Factor, Engine, str]] = []
    try:
        for factor in FACTORS:
            engine = Engine()
            engine.load(model, EngineConfig(n_ctx=factor.n_ctx, n_threads=threads, use_mmap=factor.use_mmap))
            prompt = exact_token_prompt(engine.tokenize, N_PROMPT)
            prompt_speed(engine, prompt[: len(prompt) // 8], factor.abort_callback)  # warm-up
            engines.append((factor, engine, prompt))
        n_batch = engines[0][1].n_batch
        samples: dict[str, list[float]] = {name: [] for name in ("llama-bench", *(f.name for f in FACTORS))}
        for r in range(rounds):
            order = list(engines) if r % 2 == 0 else list(reversed(engines))
            samples["llama-bench"].append(llama_bench_speed(llama_bench, model, N_PROMPT, 1, threads, n_batch).pp_tps)
            for factor, engine, prompt in order:
                samples[factor.name].append(prompt_speed(engine, prompt, factor.abort_callback))
            log.info("round %d/%d: %s", r + 1, rounds, {k: round(v[-1], 2) for k, v in samples.items()})
    finally:
        for _, engine, _ in engines:
            engine.close()
    reference = statistics.median(samples["llama-bench"])
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.processor() or platform.machine(),
        "model": model.name,
        "threads": threads,
        "n_prompt": N_PROMPT,
        "rounds": rounds,
        "llama_bench_pp_tps": reference,
        "factors": [
            {"name": name, "pp_tps": statistics.median(values), "ratio": statistics.median(values) / reference,
             "samples": values}
            for name, values in samples.items() if name != "llama-bench"
        ],
    }


def markdown(result: dict[str, object]) -> str:
    lines = [f"llama-bench pp{result['n_prompt']}: {result['llama_bench_pp_tps']:.2f} tok/s "
             f"({result['threads']} threads, median of {result['rounds']})", "",
             "| engine setting | pp tok/s | ÷ llama-bench |", "|---|---|---|"]
    for factor in result["factors"]:  # type: ignore[attr-defined]
        lines.append(f"| {factor['name']} | {factor['pp_tps']:.2f} | {factor['ratio']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from bench.harness import find_tools

    binary, _ = find_tools(build=False)
    if binary is None:
        parser.error("llama-bench is not built: bash bench/build_llama_tools.sh")
    result = run(args.model, args.rounds, args.threads, binary)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
