"""The main job as a user runs it, for the benchmarks that time it (bench_store, bench_rerun):
`llmops run --profile P` in its own process, from this checkout (or another one).

    from main_job import time_main_job   # benchmarks/ is on sys.path when a benchmark runs
"""

import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_main_job(profile: str, env: dict[str, str], root: Path = ROOT) -> tuple[float, str]:
    """Run the main job of the checkout `root` with `env`; its wall time in seconds and its
    output (stdout, then stderr). A failed run ends the benchmark with its output's tail."""
    wall, _, output = measure_main_job(profile, env, root)
    return wall, output


def measure_main_job(
    profile: str, env: dict[str, str], root: Path = ROOT
) -> tuple[float, float, str]:
    """time_main_job plus the CPU seconds (user + system) of the job and every process it
    waited for (Prefect's temporary server): steadier than wall time on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # `-m` from `root`: its own llmops and flows packages come first on sys.path.
    done = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "run", "--profile", profile],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"llmops run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout + done.stderr
