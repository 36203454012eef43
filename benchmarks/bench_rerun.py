"""The main job cold, then again with nothing changed (the cached rerun), in one fresh project
home: both wall times, their ratio, and where each rerun's time goes.

    .venv/bin/python benchmarks/bench_rerun.py --profile cpu    # the demo (`make demo`), ~6 min
    .venv/bin/python benchmarks/bench_rerun.py --quick          # tiny profile, one rerun, ~2 min
    git worktree add /tmp/before <commit>                       # before vs after, interleaved:
    .venv/bin/python benchmarks/bench_rerun.py --quick --reruns 3 --baseline /tmp/before

Each run is `llmops run --profile P` in its own process, as a user runs it. A rerun is split
by the Prefect log's timestamps into start-up (imports, the ephemeral Prefect server), the
pipeline flow run, and shut-down; its CPU seconds include Prefect's temporary server. The first
rerun after a cold run evaluates against the champion the cold run promoted (a new evaluation,
every score cached); later ones find that evaluation finished and reuse it. With --baseline,
another checkout (e.g. a worktree of an older commit) runs in its own home, cold once, and its
reruns alternate with this checkout's (baseline, this, baseline, this, ...), so both see the
same load. The last line is one JSON summary.
"""

import argparse
import json
import os
import re
import statistics
import tempfile
from datetime import datetime
from pathlib import Path

from main_job import ROOT, measure_main_job

# "00:03:13.868 | INFO    | Flow run 'x' - Beginning flow run 'x' for flow 'training-pipeline'"
LOG_TIME = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) \| ")


def run_main_job(profile: str, home: str, root: Path = ROOT) -> dict[str, float]:
    """`llmops run --profile P` of checkout `root` in `home`; its wall and CPU time and, from
    its log, the seconds before the pipeline's flow run began and after it finished."""
    started_at = datetime.now()
    wall, cpu, output = measure_main_job(profile, {**os.environ, "LLMOPS_HOME": home}, root)
    log = output.splitlines()
    began = _log_seconds(log, "for flow 'training-pipeline'", started_at)
    finished = _log_seconds(log, "Stopping temporary server", started_at)
    startup = began if began is not None else float("nan")
    pipeline = finished - startup if finished is not None else float("nan")
    return {"wall_s": wall, "cpu_s": cpu, "startup_s": startup, "pipeline_s": pipeline}


def _log_seconds(log: list[str], marker: str, started_at: datetime) -> float | None:
    """Seconds from the process start to the first log line holding `marker` (None if none)."""
    for line in log:
        match = LOG_TIME.match(line)
        if match and marker in line:
            at = datetime.strptime(match.group(1), "%H:%M:%S.%f").time()
            seconds = (datetime.combine(started_at.date(), at) - started_at).total_seconds()
            return seconds % 86400  # a run that crosses midnight
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", help="settings profile (default: cpu)")
    parser.add_argument("--reruns", type=int, default=3, help="cached reruns after the cold run")
    parser.add_argument(
        "--quick", action="store_true", help="--profile tiny (one rerun unless --reruns)"
    )
    parser.add_argument("--home", help="an empty folder to run in and keep (default: a temp one)")
    parser.add_argument(
        "--warm", action="store_true", help="the homes already hold a finished run: no cold run"
    )
    parser.add_argument("--baseline", type=Path, help="another checkout to compare, interleaved")
    parser.add_argument("--baseline-home", help="the baseline's folder (like --home)")
    args = parser.parse_args()
    profile = "tiny" if args.quick else args.profile
    reruns = args.reruns or (1 if args.quick else 3)
    if args.warm and not (args.home and (args.baseline_home or not args.baseline)):
        parser.error("--warm needs --home (and --baseline-home with --baseline)")

    with tempfile.TemporaryDirectory(prefix="bench-rerun-home-") as scratch:
        checkouts = {"this": (ROOT, args.home or f"{scratch}/this")}
        if args.baseline:
            where = args.baseline_home or f"{scratch}/baseline"
            checkouts = {"baseline": (args.baseline.resolve(), where), **checkouts}
        cold = {}
        for label, (root, home) in checkouts.items():
            if not args.warm:
                cold[label] = run_main_job(profile, home, root)
                print(f"cold run ({label}, {profile}): {cold[label]['wall_s']:.1f} s", flush=True)
        again: dict[str, list[dict[str, float]]] = {label: [] for label in checkouts}
        for i in range(reruns):
            for label, (root, home) in checkouts.items():
                r = run_main_job(profile, home, root)
                again[label].append(r)
                print(
                    f"rerun {i + 1} ({label}): {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s "
                    f"(start-up {r['startup_s']:.1f} s, pipeline {r['pipeline_s']:.1f} s, "
                    f"shut-down {r['wall_s'] - r['startup_s'] - r['pipeline_s']:.1f} s)",
                    flush=True,
                )
    summary = {"benchmark": "rerun", "profile": profile}
    for label, runs in again.items():
        prefix = "" if label == "this" else f"{label}_"
        summary |= {
            f"{prefix}cold_s": round(cold[label]["wall_s"], 1) if label in cold else None,
            f"{prefix}rerun_s": [round(r["wall_s"], 1) for r in runs],
            f"{prefix}rerun_cpu_s": [round(r["cpu_s"], 1) for r in runs],
            f"{prefix}rerun_median_s": round(_median(runs, "wall_s"), 1),
            f"{prefix}rerun_startup_median_s": round(_median(runs, "startup_s"), 1),
            f"{prefix}rerun_pipeline_median_s": round(_median(runs, "pipeline_s"), 1),
        }
    if "this" in cold:
        summary["cold_over_rerun"] = round(
            cold["this"]["wall_s"] / _median(again["this"], "wall_s"), 2
        )
    if args.baseline:
        for measure in ("wall_s", "cpu_s"):
            pairs = zip(again["baseline"], again["this"], strict=True)
            ratios = [b[measure] / t[measure] for b, t in pairs]
            summary[f"baseline_over_this_{measure[:-2]}"] = {
                "median": round(statistics.median(ratios), 2),
                "min": round(min(ratios), 2),
                "max": round(max(ratios), 2),
            }
    summary["load_average_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps(summary))


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


if __name__ == "__main__":
    main()
