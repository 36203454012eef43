"""The main job cold, then again with nothing changed (the cached rerun), in one fresh project
home: both wall times, their ratio, and where each rerun's time goes.

    .venv/bin/python benchmarks/bench_rerun.py --profile cpu    # the demo (`make demo`), ~6 min
    .venv/bin/python benchmarks/bench_rerun.py --quick          # tiny profile, one rerun, ~2 min

Each run is `llmops run --profile P` in its own process, as a user runs it. A rerun is split
by the Prefect log's timestamps into start-up (imports, the ephemeral Prefect server), the
pipeline flow run, and shut-down. The last line is one JSON summary.
"""

import argparse
import json
import os
import re
import statistics
import tempfile
from datetime import datetime

from main_job import time_main_job

# "00:03:13.868 | INFO    | Flow run 'x' - Beginning flow run 'x' for flow 'training-pipeline'"
LOG_TIME = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) \| ")


def run_main_job(profile: str, home: str) -> dict[str, float]:
    """`llmops run --profile P` in `home`; its wall time and, from its log, the seconds before
    the pipeline's flow run began and after it finished."""
    started_at = datetime.now()
    wall, output = time_main_job(profile, {**os.environ, "LLMOPS_HOME": home})
    log = output.splitlines()
    began = _log_seconds(log, "for flow 'training-pipeline'", started_at)
    finished = _log_seconds(log, "Stopping temporary server", started_at)
    startup = began if began is not None else float("nan")
    pipeline = finished - startup if finished is not None else float("nan")
    return {"wall_s": wall, "startup_s": startup, "pipeline_s": pipeline}


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
    parser.add_argument("--quick", action="store_true", help="--profile tiny --reruns 1")
    parser.add_argument("--home", help="an empty folder to run in and keep (default: a temp one)")
    args = parser.parse_args()
    profile, reruns = ("tiny", 1) if args.quick else (args.profile, args.reruns)

    with tempfile.TemporaryDirectory(prefix="bench-rerun-home-") as scratch:
        home = args.home or scratch
        cold = run_main_job(profile, home)
        print(f"cold run ({profile}): {cold['wall_s']:.1f} s", flush=True)
        again = []
        for i in range(reruns):
            again.append(run_main_job(profile, home))
            r = again[-1]
            print(
                f"rerun {i + 1}: {r['wall_s']:.1f} s (start-up {r['startup_s']:.1f} s, "
                f"pipeline {r['pipeline_s']:.1f} s, shut-down "
                f"{r['wall_s'] - r['startup_s'] - r['pipeline_s']:.1f} s)",
                flush=True,
            )
    rerun = statistics.median(r["wall_s"] for r in again)
    summary = {
        "benchmark": "rerun",
        "profile": profile,
        "cold_s": round(cold["wall_s"], 1),
        "rerun_s": [round(r["wall_s"], 1) for r in again],
        "rerun_median_s": round(rerun, 1),
        "rerun_startup_median_s": round(statistics.median(r["startup_s"] for r in again), 1),
        "rerun_pipeline_median_s": round(statistics.median(r["pipeline_s"] for r in again), 1),
        "cold_over_rerun": round(cold["wall_s"] / rerun, 2),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(
        f"cold {summary['cold_s']} s, cached rerun {summary['rerun_median_s']} s (median), "
        f"{summary['cold_over_rerun']}x"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
