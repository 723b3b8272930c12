"""Turn one benchmark run into a Markdown summary and PNG plots (matplotlib, offline)."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from app.core.units import format_bytes
from bench.harness import TARGETS

PLOTS = ("overhead.png", "retype.png", "ui_stalls.png", "memory.png", "edit_session.png")


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def markdown(results: dict[str, Any], plot_prefix: str = "") -> str:
    s = results["summary"]
    m = results["machine"]
    model = results["model"]
    lines = [
        f"# Starpad benchmark — {results['started']}{' (quick)' if results['quick'] else ''}",
        "",
        f"**Machine:** {m['cpu']}, {m['physical_cores']} cores ({m['logical_cores']} threads), "
        f"{format_bytes(m['ram_bytes'])} RAM, {m['os']}, Python {m['python']}, "
        f"llama-cpp-python {m['llama_cpp_python']}; {results['threads']} threads.  ",
        f"**Model:** {Path(model['path']).name} ({model['file_type']}, {format_bytes(model['size_bytes'])}, "
        f"{_params(model['n_params'])} parameters).",
        "",
        "| Measure | Result | Target | |",
        "|---|---|---|---|",
    ]
    over = results.get("overhead", {})
    ref = over.get("reference", "llama.cpp")
    for key, label in (("tg_ratio", f"Generation speed vs {ref}"), ("pp_ratio", f"Prompt speed vs {ref}")):
        value = s[key]
        lines.append(f"| {label} | {_fmt(value, '.3f')} | ≥ {TARGETS[key]} | "
                     f"{_verdict(None if value is None else value >= TARGETS[key])} |")
    retype_runs = results.get("retype", {}).get("runs", [])
    for run in retype_runs:
        if run["peer"] != "starpad":
            continue
        worst = max(run["ratio_to_cold"].values())
        lines.append(f"| Re-completion TTFT / cold, Starpad {run['layout'].upper()} (worse of +1 and +5 chars) | "
                     f"{worst:.4f} | ≤ {TARGETS['retype_ttft_ratio']} | "
                     f"{_verdict(worst <= TARGETS['retype_ttft_ratio'])} |")
    for name, stall in s["max_stall_ms"].items():
        lines.append(f"| Longest UI stall: {name} | {stall:.0f} ms | ≤ {TARGETS['max_stall_ms']:.0f} ms | "
                     f"{_verdict(stall <= TARGETS['max_stall_ms'])} |")
    rss = s["rss_error_pct"]
    lines.append(f"| RSS vs fit estimate (worst of 4K, 16K) | {_fmt(rss, '.1f')} % | "
                 f"≤ {TARGETS['rss_error_pct']:.0f} % | "
                 f"{_verdict(None if rss is None else rss <= TARGETS['rss_error_pct'])} |")
    bw = results.get("bandwidth", {})
    lines.append(f"| Generation / bandwidth limit | {_fmt(s['bandwidth_fraction'], '.2f')} | (reported) | |")

    if "starpad_median" in over:
        lines += ["", f"## Speed vs llama.cpp ({ref}, {over['n_prompt']}-token prompt, {over['n_gen']} generated, "
                  f"{len(over['starpad'])} alternating rounds, medians)", "",
                  "| | prompt tok/s | generation tok/s |", "|---|---|---|",
                  f"| Starpad engine | {over['starpad_median']['pp_tps']:.2f} | "
                  f"{over['starpad_median']['tg_tps']:.2f} |",
                  f"| {ref} | {over['llama_cpp_median']['pp_tps']:.2f} | {over['llama_cpp_median']['tg_tps']:.2f} |"]
    if retype_runs:
        rt = results["retype"]
        lines += ["", f"## Re-completion while typing ({rt['prefix_tokens']} tokens before the caret, "
                  f"{rt['suffix_tokens']} after; time to first token)", "",
                  "| Peer | Layout | cold | +1 char | +5 chars | tokens evaluated (cold / +1 / +5) |",
                  "|---|---|---|---|---|---|"]
        for run in retype_runs:
            t, e = run["ttft_ms"], run["evaluated_tokens"]
            lines.append(
                f"| {run['peer']} | {run['layout'].upper()} | {t['cold'] / 1000:.2f} s | "
                f"{t['+1 char']:.0f} ms ({run['ratio_to_cold']['+1 char']:.4f}) | "
                f"{t['+5 chars']:.0f} ms ({run['ratio_to_cold']['+5 chars']:.4f}) | "
                f"{e['cold']} / {e['+1 char']} / {e['+5 chars']} |")
        if "server_error" in rt:
            lines.append(f"\nllama-server peer not measured: {rt['server_error']}")
    ui = results.get("ui", {}).get("phases", {})
    if ui:
        lines += ["", f"## UI smoothness (heartbeat every {results['ui']['heartbeat_ms']} ms on the GUI thread)", "",
                  "| Scenario | duration | longest gap | 99th percentile gap |", "|---|---|---|---|"]
        lines += [
            f"| {n} | {p['seconds']:.1f} s | {p['max_gap_ms']:.0f} ms | {p['p99_gap_ms']:.0f} ms |"
            for n, p in ui.items()
        ]
    memory = results.get("memory")
    if isinstance(memory, list):
        lines += ["", "## Memory after load (fresh process each, no mmap)", "",
                  "| context | RSS | estimate (measured base) | error | estimate (app's 200 MB base) | error |",
                  "|---|---|---|---|---|---|"]
        for run in memory:
            lines.append(
                f"| {run['n_ctx']:,} | {format_bytes(run['loaded']['VmRSS'])} | "
                f"{format_bytes(run['predicted']['total'])} | {run['error_pct']:+.1f} % | "
                f"{format_bytes(run['predicted_app']['total'])} | {run['error_pct_app']:+.1f} % |")
    if "bytes_per_s" in bw:
        lines += ["", "## Bandwidth limit", "",
                  f"Read bandwidth {bw['bytes_per_s'] / 1e9:.1f} GB/s ({bw['threads']} threads, {bw['method']}) ÷ "
                  f"{format_bytes(model['size_bytes'])} = {_fmt(bw.get('limit_tps'), '.2f')} tok/s at most; "
                  f"Starpad generates {_fmt(bw.get('starpad_tg_tps'), '.2f')} tok/s = "
                  f"**{_fmt(bw.get('fraction'), '.2f')}** of the limit."]
    lines += _edit_session_lines(results.get("edit_session", {}))
    errors = [f"- {k}: {v['error']}" for k, v in results.items() if isinstance(v, dict) and "error" in v]
    if errors:
        lines += ["", "## Failed scenarios", "", *errors]
    lines += ["", *[f"![{p}]({plot_prefix}{p})" for p in PLOTS], ""]
    return "\n".join(lines)


def _seconds(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


#: The editing session's runs: (key in ``edit_session``, label); "" is the local run at the top level.
EDIT_RUNS = (("", "Starpad, one file (local engine)"),
             ("repo_context", "Starpad, repository context on (multi-file, local engine)"),
             ("remote", "Starpad through llama-server on 127.0.0.1 (one file)"),
             ("peer", "llama-server driven like llama.vscode"))


def _edit_runs(es: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]], str | None]]:
    """(key, label, rows, why it is missing) of each run the results mention."""
    runs: list[tuple[str, str, list[dict[str, Any]], str | None]] = []
    for key, label in EDIT_RUNS:
        if key == "":
            rows, error = es.get("rows") or [], es.get("local_error")
        elif key == "peer":
            rows, error = es.get("peer_rows") or [], es.get("peer_error")
        else:
            part = es.get(key)
            if not isinstance(part, dict):
                continue
            rows, error = part.get("rows") or [], part.get("error")
        if rows or error:
            runs.append((key, label, rows, error))
    return runs


def _later_engine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not r["first_in_file"] and r["served"] == "engine"]


def _tokens_per_event(rows: list[dict[str, Any]]) -> str:
    """Median tokens evaluated / reused (kept, moved or server-cached) per answered event
    after the first in a file: what each event cost the engine."""
    later = _later_engine(rows)
    if not later:
        return "—"
    evaluated = statistics.median(r["evaluated"] for r in later)
    reused = statistics.median(r["reused_exact"] + r["reused_shifted"] for r in later)
    return f"{evaluated:,.0f} / {reused:,.0f}"


def _run_summary(es: dict[str, Any], key: str,
                 rows: list[dict[str, Any]]) -> tuple[float | None, float | None, float | None]:
    """Median, 90th percentile and first-open TTFT of a run: as stored, else from its rows."""
    if key == "":
        stored = es
    elif key == "peer":
        stored = {k.removeprefix("peer_"): v for k, v in es.items() if k.startswith("peer_")}
    else:
        stored = es.get(key, {})
    names = ("ttft_ms_median", "ttft_ms_p90", "first_open_ttft_ms")
    if all(stored.get(name) is not None for name in names):
        return stored["ttft_ms_median"], stored["ttft_ms_p90"], stored["first_open_ttft_ms"]
    later = [r["ttft_ms"] for r in rows if not r["first_in_file"] and r["ttft_ms"] is not None]
    firsts = [r for r in rows if r["first_in_file"]]
    median = statistics.median(later) if later else None
    p90 = float(statistics.quantiles(later, n=10, method="inclusive")[-1]) if len(later) > 1 else median
    return median, p90, firsts[0]["ttft_ms"] if firsts else None


def _variant_lines(es: dict[str, Any]) -> list[str]:
    """One line per run (median, p90, first open, tokens per event), then a small table
    per event for the multi-file and the remote run."""
    runs = _edit_runs(es)
    if len(runs) < 2 and not any(key in ("repo_context", "remote") for key, *_ in runs):
        return []
    lines = ["", "### Starpad's runs side by side (TTFT: debounce to first token; evaluated / reused: medians "
             "per answered event after the first in a file)", "",
             "| Run | TTFT median | TTFT p90 | first open | evaluated / reused | context block (median / max) |",
             "|---|---|---|---|---|---|"]
    for key, label, rows, error in runs:
        if error and not rows:
            lines.append(f"| {label} | not measured: {error} | | | | |")
            continue
        median, p90, first = _run_summary(es, key, rows)
        sizes = [r.get("context_tokens", 0) for r in rows]
        block = f"{statistics.median(sizes):,.0f} / {max(sizes):,} tokens" if any(sizes) else "—"
        lines.append(f"| {label} | {_seconds(median)} | {_seconds(p90)} | {_seconds(first)} | "
                     f"{_tokens_per_event(rows)} | {block} |")
    repo = es.get("repo_context")
    if isinstance(repo, dict) and repo.get("rows"):
        lines += ["", f"### Multi-file run (repository context on; workspace {repo.get('workspace', '?')}, the "
                  f"block may take {repo.get('repo_budget_tokens', 0):,} tokens)", "",
                  "| # | event | file:line | TTFT | evaluated / exact / moved / restored | context block | "
                  "context files |", "|---|---|---|---|---|---|---|"]
        for row in repo["rows"]:
            lines.append(
                f"| {row['index']} | {row['kind']}{' (first)' if row['first_in_file'] else ''} | "
                f"{Path(row['file']).name}:{row['line']} | {_seconds(row['ttft_ms'])}"
                f"{' (cache)' if row['served'] == 'cache' else ''} | {row['evaluated']:,} / "
                f"{row['reused_exact']:,} / {row['reused_shifted']:,} / {row['restored']:,} | "
                f"{row.get('context_tokens', 0):,}{' (narrowed)' if row.get('narrowed') else ''} | "
                f"{', '.join(row.get('context_files', [])) or '—'} |")
    remote = es.get("remote")
    if isinstance(remote, dict) and remote.get("rows"):
        lines += ["", f"### Remote run (Starpad's session on a LlamaServerEngine; `{remote.get('server_command')}`; "
                  "reused: the server's own cached-token count)", "",
                  "| # | event | file:line | TTFT | evaluated / server-cached |", "|---|---|---|---|---|"]
        for row in remote["rows"]:
            lines.append(
                f"| {row['index']} | {row['kind']}{' (first)' if row['first_in_file'] else ''} | "
                f"{Path(row['file']).name}:{row['line']} | {_seconds(row['ttft_ms'])}"
                f"{' (cache)' if row['served'] == 'cache' else ''} | {row['evaluated']:,} / {row['reused_exact']:,} |")
    return lines


def _edit_session_lines(es: dict[str, Any]) -> list[str]:
    """The editing-session tables: targets, both peers per event, the other runs, the quality check."""
    if not _edit_runs(es):
        return []
    ratio_target = TARGETS["edit_peer_ratio"]
    lines = [
        "", f"## Editing session (CPython's json/decoder.py and json/encoder.py; debounce {es['debounce_ms']} ms, "
        f"keystrokes {es['keystroke_ms']:.0f} ms apart, "
        f"{'reuse mode ' + es['reuse_mode'] + ', ' if es.get('reuse_mode') else ''}"
        f"{es['max_tokens']} tokens per completion)", "",
    ]
    if "local_error" in es:
        lines.append(f"The local run failed: {es['local_error']}")
    lines += _local_lines(es, ratio_target)
    lines += _variant_lines(es)
    lines += _quality_lines(es)
    return lines


def _local_lines(es: dict[str, Any], ratio_target: float) -> list[str]:
    """The local run against llama.vscode's peer: targets and every event."""
    if not es.get("rows"):
        return []
    lines = ["| Measure | Starpad | llama-server (llama.vscode) | Target | |", "|---|---|---|---|---|"]
    for key, label, target in (("ttft_ms_median", "TTFT median, events after the first in a file",
                                TARGETS["edit_ttft_ms_median"]),
                               ("ttft_ms_p90", "TTFT 90th percentile", TARGETS["edit_ttft_ms_p90"]),
                               ("first_open_ttft_ms", "First completion in a just-opened file",
                                TARGETS["edit_first_open_ttft_ms"])):
        mine, peer = es.get(key), es.get(f"peer_{key}")
        lines.append(f"| {label} | {_seconds(mine)} | {_seconds(peer)} | ≤ {_seconds(target)} | "
                     f"{_verdict(None if mine is None else mine <= target)} |")
    for key, label in (("ratio_median", "median"), ("ratio_p90", "90th percentile")):
        value = es.get(key)
        lines.append(f"| Starpad / llama-server, {label} | {_fmt(value, '.3f')} | | ≤ {ratio_target:.2f} | "
                     f"{_verdict(None if value is None else value <= ratio_target)} |")
    peers = {row["index"]: row for row in es.get("peer_rows", [])}
    lines += ["", "| # | event | file:line | Starpad TTFT | evaluated / exact / moved / restored | "
              "llama-server TTFT | evaluated / cached |", "|---|---|---|---|---|---|---|"]
    for row in es["rows"]:
        peer = peers.get(row["index"])
        served = " (cache)" if row["served"] == "cache" else ""
        peer_cells = ("— | —" if peer is None else
                      f"{_seconds(peer['ttft_ms'])}{' (cache)' if peer['served'] == 'cache' else ''} | "
                      f"{peer['evaluated']:,} / {peer['reused_exact']:,}")
        first = " (first)" if row["first_in_file"] else ""
        lines.append(
            f"| {row['index']} | {row['kind']}{first} | {Path(row['file']).name}:{row['line']} | "
            f"{_seconds(row['ttft_ms'])}{served} | {row['evaluated']:,} / {row['reused_exact']:,} / "
            f"{row['reused_shifted']:,} / {row['restored']:,} | {peer_cells} |")
    if "peer_error" in es:
        lines.append(f"\nllama-server peer not measured: {es['peer_error']}")
    return lines


def _quality_lines(es: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    quality = es.get("quality", {})
    if "skipped" in quality:
        lines.append(f"\nQuality of moved KV blocks not measured: {quality['skipped']}")
    elif quality:
        lines += ["", f"### Quality of moved KV blocks ({quality['model']}, teacher-forced top-1 agreement with a "
                  f"cold run over {quality['n_tokens']} tokens; control: the same prompt exact but in another "
                  "batch split)", "",
                  "| event type | events | fast top-1 | control top-1 | fast identical | control identical |",
                  "|---|---|---|---|---|---|"]
        for kind, k in quality["by_kind"].items():
            lines.append(f"| {kind} | {k['events']} | {k['approx_top1_pct']:.1f} % | {k['control_top1_pct']:.1f} % | "
                         f"{k['approx_identical']} | {k['control_identical']} |")
        lines.append(f"| **all** | {len(quality['rows'])} | {_fmt(quality['approx_top1_pct'], '.1f')} % | "
                     f"{_fmt(quality['control_top1_pct'], '.1f')} % | "
                     f"{_fmt(quality['approx_identical_pct'], '.0f')} % | "
                     f"{_fmt(quality['control_identical_pct'], '.0f')} % |")
        lines.append(f"\nWorst event type: {quality['worst_event_type']} (fast "
                     f"{_fmt(quality['worst_approx_top1_pct'], '.1f')} % vs control "
                     f"{_fmt(quality['worst_control_top1_pct'], '.1f')} %).")
        if quality.get("window_events"):
            lines.append(
                f"\nThe price of the narrowed first answer: over the {quality['window_events']} events answered "
                f"from a window (median {_fmt(quality['window_tokens_median'], '.0f')} tokens before the caret), "
                f"top-1 agreement with the whole prompt's completion is {_fmt(quality['window_top1_pct'], '.1f')} % "
                "(the window grows to the whole prompt in idle time; later answers use it).")
    return lines


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """One PNG per scenario that ran; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(out / name)

    over = results.get("overhead", {})
    if "starpad_median" in over:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
        for ax, key, title in ((axes[0], "pp_tps", f"prompt ({over['n_prompt']} tokens)"),
                               (axes[1], "tg_tps", f"generation ({over['n_gen']} tokens)")):
            sides = (("Starpad", over["starpad"], "#3b7dd8"), (over["reference"], over["llama_cpp"], "#999999"))
            for i, (_label, runs, colour) in enumerate(sides):
                values = [r[key] for r in runs]
                ax.bar(i, statistics.median(values), color=colour, width=0.6)
                ax.scatter([i] * len(values), values, color="black", s=10, zorder=3)
            ax.set_xticks([0, 1], [s[0] for s in sides])
            ax.set_title(title)
            ax.set_ylabel("tokens/s")
        save(fig, "overhead.png")

    runs = results.get("retype", {}).get("runs", [])
    if runs:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        steps = ("cold", "+1 char", "+5 chars")
        width = 0.8 / len(runs)
        for i, run in enumerate(runs):
            xs = [s + i * width for s in range(len(steps))]
            ax.bar(xs, [run["ttft_ms"][s] / 1000 for s in steps], width, label=f"{run['peer']} {run['layout'].upper()}")
        ax.set_xticks([s + 0.4 - width / 2 for s in range(len(steps))], steps)
        ax.set_yscale("log")
        ax.set_ylabel("time to first token (s, log)")
        ax.set_title("Re-completion while typing")
        ax.legend(fontsize=8)
        save(fig, "retype.png")

    phases = results.get("ui", {}).get("phases", {})
    if phases:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        names = list(phases)
        ax.bar(names, [phases[n]["max_gap_ms"] for n in names], color="#3b7dd8", label="longest gap")
        ax.bar(names, [phases[n]["p99_gap_ms"] for n in names], color="#9cc0f0", width=0.5, label="99th percentile")
        ax.axhline(TARGETS["max_stall_ms"], color="red", linestyle="--", label="target")
        ax.set_ylabel("event-loop gap (ms)")
        ax.set_title("UI smoothness")
        ax.legend(fontsize=8)
        save(fig, "ui_stalls.png")

    memory = results.get("memory")
    if isinstance(memory, list) and memory:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        labels = [f"{m['n_ctx'] // 1024}K" for m in memory]
        xs = list(range(len(memory)))
        ax.bar([x - 0.2 for x in xs], [m["loaded"]["VmRSS"] / 1e9 for m in memory], 0.4, label="measured RSS")
        ax.bar([x + 0.2 for x in xs], [m["predicted"]["total"] / 1e9 for m in memory], 0.4, label="estimate")
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel("GB")
        ax.set_title("Memory after load")
        ax.legend(fontsize=8)
        save(fig, "memory.png")
    es = results.get("edit_session", {})
    edit_runs = [(key, label, rows) for key, label, rows, _error in _edit_runs(es) if rows]
    if edit_runs:
        # Every run's events side by side, lined up by their index in the session (a quick
        # run plays the variants through a few of its events only).
        event_names: dict[int, str] = {}
        for _key, _label, rows in reversed(edit_runs):
            event_names.update({r["index"]: f"{r['kind']}{' *' if r['first_in_file'] else ''}" for r in rows})
        indices = sorted(event_names)
        fig, ax = plt.subplots(figsize=(min(16.0, max(9.0, 0.3 * len(indices) * len(edit_runs))), 4.0))
        floor = 1.0  # ms: a cache hit (0 ms) still shows on the log scale
        width = 0.8 / len(edit_runs)
        tallest = floor
        colours = {"": "#3b7dd8", "repo_context": "#2ca02c", "remote": "#e08a1e", "peer": "#999999"}
        for i, (key, label, rows) in enumerate(edit_runs):
            by_index = {r["index"]: r for r in rows}
            heights = [max(floor, by_index[x]["ttft_ms"]) if x in by_index and by_index[x]["ttft_ms"] is not None
                       else 0.0 for x in indices]
            tallest = max(tallest, *heights)
            ax.bar([p - 0.4 + width * (i + 0.5) for p in range(len(indices))], heights, width, label=label,
                   color=colours[key])
        ax.axhline(TARGETS["edit_ttft_ms_median"], color="red", linestyle="--", linewidth=1, label="1 s")
        ax.set_xticks(list(range(len(indices))), [event_names[x] for x in indices], rotation=35, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylim(floor / 2, max(tallest, TARGETS["edit_ttft_ms_median"]) * 60)  # room for the legend
        ax.set_ylabel("debounce → first token (ms, log)")
        ax.set_title("Editing session, per event (* first in a file; cache hits drawn at 1 ms)")
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        save(fig, "edit_session.png")
    return written


def main(argv: list[str] | None = None) -> int:
    """Re-render the summary and plots of a stored run: ``python -m bench.report RUN.json OUT``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--markdown", default="summary.md", help="file name of the summary (latest.md for results/)")
    args = parser.parse_args(argv)
    results = json.loads(args.run.read_text())
    results = results.get("details", results)  # latest.json nests the full run
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / args.markdown).write_text(markdown(results))
    plots(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
