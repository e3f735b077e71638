"""Run every benchmark, one after another, and print a Markdown summary for the README.

Run: python bench/run_all.py [--only throughput,fanout,...]
Each script prints its own table and writes bench/results/{name}.json; this one reads those
files back and prints one Markdown table (also written to bench/results/summary.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"

SCRIPTS = {
    "throughput": "bench_throughput.py",
    "record_cost": "bench_record_cost.py",
    "fanout": "bench_fanout.py",
    "reattach": "bench_reattach.py",
    "startup": "bench_startup.py",
    "dedup": "bench_dedup.py",
}


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def summary_rows() -> list[tuple[str, str, str, str, str]]:
    """(benchmark, figure, baseline, ratio, target and verdict) per measured figure."""
    rows: list[tuple[str, str, str, str, str]] = []
    if d := load("throughput"):
        rows.append(
            (
                f"1. Throughput, {d['events']:,} events, 1 subscriber",
                f"{d['ours_events_per_s']:,.0f} events/s",
                f"bare tornado SSE from memory: {d['baseline_events_per_s']:,.0f} events/s",
                f"{d['ratio']:.2f}",
                f">= 0.5: {verdict(d['met'])}",
            )
        )
    if d := load("record_cost"):
        us = d["ours_us_per_event"]
        rows.append(
            (
                "2. Cost per recorded event, 100k vs 1k",
                f"{us['100000']:.1f} us at 100k",
                f"{us['1000']:.1f} us at 1k",
                f"{d['ratio_100k_over_1k']:.2f}",
                f"<= 1.5: {verdict(d['met']['ratio_100k_over_1k'])}",
            )
        )
        rows.append(
            (
                "2. Seed design (rewrite all per chunk) vs ours, 10k events",
                f"ours {us['10000']:.1f} us/event",
                f"seed {d['seed']['us_per_event']:,.0f} us/event",
                f"{d['ratio_seed_over_ours_at_10k']:.0f}x",
                f">= 50x: {verdict(d['met']['ratio_seed_over_ours_at_10k'])}",
            )
        )
    if d := load("fanout"):
        one = d["delivered_per_s"].get("1")
        for n, rate in d["delivered_per_s"].items():
            if n == "1":
                continue
            resets = sum(r.get("reconnects", 0) for r in d["rounds"][n])
            resumed = f" ({resets} resets resumed via Last-Event-ID)" if resets else ""
            rows.append(
                (
                    f"3. Fan-out, {n} subscribers x {d['events']:,} events, all in order",
                    f"{rate:,.0f} delivered events/s{resumed}",
                    f"1 subscriber: {one:,.0f} events/s",
                    f"{d['ratio_vs_one_subscriber'][n]:.2f}",
                    "(no target)",
                )
            )
    if d := load("reattach"):
        med, ratios = d["medians"], d["ratios"]
        big, small = d["big_events"], d["small_events"]
        for key, label, ratio in (
            (
                "warm_reattach_s",
                "reattach near end, warm",
                "warm_reattach_first_event_big_over_small",
            ),
            (
                "cold_reattach_s",
                "reattach near end, cold",
                "cold_reattach_first_event_big_over_small",
            ),
            ("replay_first_s", "replay from start", "replay_first_event_big_over_small"),
        ):
            rows.append(
                (
                    f"4. First event, {label}, {big:,} vs {small:,} events",
                    f"{med['big_' + key] * 1e3:.1f} ms",
                    f"{med['small_' + key] * 1e3:.1f} ms",
                    f"{ratios[ratio]:.2f}",
                    f"<= 2: {verdict(ratios[ratio] <= 2)}",
                )
            )
        rows.append(
            (
                f"4. Full replay rate, {big:,} vs {small:,} events",
                f"{med['big_replay_events_per_s']:,.0f} events/s",
                f"{med['small_replay_events_per_s']:,.0f} events/s",
                f"{ratios['replay_rate_big_over_small']:.2f}",
                "(no target)",
            )
        )
    if d := load("startup"):
        med = d["medians"]
        rows.append(
            (
                f"5. Start-up to first `GET health`, {d['tasks']:,} vs 0 tasks",
                f"{med['full']['startup_s']:.2f} s",
                f"{med['empty']['startup_s']:.2f} s",
                f"{d['ratio_startup']:.2f}",
                f"<= 1.2: {verdict(d['met'])}",
            )
        )
        if "listening_s" in med["full"]:
            rows.append(
                (
                    f"5. Until the port answers (jupyter's `GET /api`), {d['tasks']:,} vs 0 tasks",
                    f"{med['full']['listening_s']:.2f} s",
                    f"{med['empty']['listening_s']:.2f} s",
                    f"{med['full']['listening_s'] / med['empty']['listening_s']:.2f}",
                    "(context)",
                )
            )
            rows.append(
                (
                    f"5. One `GET health` once ready, {d['tasks']:,} vs 0 tasks",
                    f"{med['full']['health_s'] * 1e3:.0f} ms",
                    f"{med['empty']['health_s'] * 1e3:.0f} ms",
                    f"{med['full']['health_s'] / med['empty']['health_s']:.0f}",
                    "(context)",
                )
            )
        if "no_cache" in med:
            rows.append(
                (
                    f"5. First start-up on a folder without cache files, {d['tasks']:,} vs 0",
                    f"{med['no_cache']['startup_s']:.2f} s",
                    f"{med['empty']['startup_s']:.2f} s",
                    f"{d['ratio_startup_no_cache']:.2f}",
                    "<= 2 (once per folder)",
                )
            )
            rows.append(
                (
                    f"5. `GET tasks?limit=20` / all, {d['tasks']:,} tasks",
                    f"{med['full']['list_20_s'] * 1e3:.0f} ms / {med['full']['list_all_s']:.1f} s",
                    f"0 tasks: {med['empty']['list_20_s'] * 1e3:.0f} ms",
                    "",
                    "(context)",
                )
            )
        rows.append(
            (
                f"5. Resident memory when ready, {d['tasks']:,} vs 0 tasks",
                f"{med['full']['rss_ready_mb']:.0f} MB",
                f"{med['empty']['rss_ready_mb']:.0f} MB",
                f"{d['ratio_rss_ready']:.2f}",
                "(no target)",
            )
        )
    if d := load("dedup"):
        med = d["medians"]
        rows.append(
            (
                f"6. {d['concurrency']} identical concurrent POSTs (one task created), p50 / p99",
                f"{med['post_p50_ms']:.0f} / {med['post_p99_ms']:.0f} ms",
                f"{d['concurrency']} GETs: {med['get_p50_ms']:.0f} / {med['get_p99_ms']:.0f} ms",
                f"{d['ratio_p50_post_over_get']:.2f} / {d['ratio_p99_post_over_get']:.2f}",
                "(no target)",
            )
        )
    return rows


def markdown(rows: list[tuple[str, str, str, str, str]]) -> str:
    head = "| Benchmark | Ours | Baseline (same run) | Ratio | Target |\n" + "| --- " * 5 + "|"
    return "\n".join([head, *("| " + " | ".join(row) + " |" for row in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated names")
    parser.add_argument("--summary-only", action="store_true", help="just reprint the table")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    timings = {}
    if not args.summary_only:
        for name in names:
            print(f"\n===== {name}: python bench/{SCRIPTS[name]}", flush=True)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, str(BENCH / SCRIPTS[name])], check=False)
            timings[name] = time.perf_counter() - started
            print(f"===== {name}: exit {done.returncode} in {timings[name]:.0f}s", flush=True)
    table = markdown(summary_rows())
    machine = load(names[0]) or {}
    note = (
        f"\nMeasured with `python bench/run_all.py` on {machine.get('cpus', '?')} CPUs, "
        f"Python {machine.get('python', '?')}, {machine.get('platform', '?')}; each figure is "
        "a median of repeated runs, and each ratio is against a baseline measured in the same run."
    )
    text = table + "\n" + note + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.md").write_text(text)
    print("\n" + text)
    if timings:
        print("script times: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))


if __name__ == "__main__":
    main()
