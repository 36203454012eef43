"""The main job as a user runs it, for the benchmarks that time it (bench_store, bench_rerun):
`llmops run --profile P` in its own process, from this checkout.

    from main_job import time_main_job   # benchmarks/ is on sys.path when a benchmark runs
"""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_main_job(profile: str, env: dict[str, str]) -> tuple[float, str]:
    """Run the main job with `env`; its wall time in seconds and its output (stdout, then
    stderr). A failed run ends the benchmark with its output's tail."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "run", "--profile", profile],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"llmops run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, done.stdout + done.stderr
