"""Whole `prepare` flow throughput (records/s) and peak memory (RSS of the whole process tree,
Dask workers included) on N short records: the sharded flow in one process (threads) and on a
local Dask cluster (`dask_address: local`), interleaved A B A B in one run, each run in a fresh
process; against the whole-batch flow this replaced, run from its commit (`--baseline`, mode
`whole-batch`) or as its committed figure (4,935 records/s, 6.9 GiB peak on 1M records), and
the floor of merely parsing the file with pandas.

    .venv/bin/python benchmarks/bench_prepare.py --records 1000000
    .venv/bin/python benchmarks/bench_prepare.py --quick          # 20k records, one run each
    .venv/bin/python benchmarks/bench_prepare.py --records 1000000 --modes whole-batch single \
        --baseline 8ff7d8a                                       # the old code in the same run

The last line is one JSON summary. Both modes must give the same dataset (id and counts): the
benchmark fails otherwise.
"""

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

WORDS = [f"topic{i}" for i in range(12)]
# The whole-batch flow's figures, docs/data.md (before sharding; 2 cores shared with a test run).
WHOLE_BATCH = {"records_per_s": 4935, "peak_rss_mib": 6.9 * 1024, "records": 1_000_000}
MODES = {"single": None, "dask": "local"}
PARSE_SAMPLE = 100_000
MEASURES = ("seconds", "cpu_seconds", "peak_rss_mib")
BASELINE = "whole-batch"  # the flow at --baseline's commit, from its own source tree


def write_corpus(path: Path, n: int) -> None:
    """n short instruction records; ~5% exact duplicates, a few PII mentions."""
    rng = random.Random(0)
    with path.open("w") as handle:
        for i in range(n):
            if i and rng.random() < 0.05:
                words = ["repeat", str(rng.randrange(i))]
            else:
                words = [rng.choice(WORDS) + str(rng.randrange(10**6)) for _ in range(12)]
            if rng.random() < 0.01:
                words.append(f"user{i}@example.com")
            prompt = " ".join(words)
            handle.write(json.dumps({"id": str(i), "prompt": prompt, "response": f"ok {i}"}) + "\n")


def run_once(source: str, output: str, mode: str, shard_records: int, range_records: int) -> dict:
    """One prepare run in this process (what the parent measures from outside)."""
    from llmops.home import configure_environment

    configure_environment()
    from flows.prepare import prepare
    from llmops.flow_configs import PrepareConfig

    # The whole-batch code's config knows no shards.
    sharding = (
        {} if mode == BASELINE else {"shard_records": shard_records, "range_records": range_records}
    )
    config = PrepareConfig.from_profile(
        "cpu",
        sources=[source],
        output=output,
        eda=False,
        **sharding,
        **({"dask_address": MODES[mode]} if mode in MODES else {}),
    )
    start = time.perf_counter()
    dataset = prepare(config)
    return {"seconds": time.perf_counter() - start, "id": dataset.dataset_id, **dataset.counts}


def measure(source: Path, mode: str, shard_records: int, range_records: int, tmp: Path) -> dict:
    """Run one mode in a child process; sample the RSS of it and its descendants."""
    output = tempfile.mkdtemp(dir=tmp)
    # The baseline's packages (llmops, flows, tasks) come first on the path, before this
    # tree's editable install.
    env = {**os.environ, "PYTHONPATH": str(tmp / BASELINE)} if mode == BASELINE else None
    child = subprocess.Popen(
        [sys.executable, __file__, "--run-one", mode, "--source", str(source)]
        + ["--output", output, "--shard-records", str(shard_records)]
        + ["--range-records", str(range_records)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    if child.returncode:
        raise SystemExit(f"{mode} run failed with exit code {child.returncode}")
    # CPU seconds of the child and every descendant it waited for (steadier than wall time
    # on a shared machine).
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result = json.loads(child.stdout.read().strip().splitlines()[-1])
    return {**result, "mode": mode, "peak_rss_mib": peak / 2**20, "cpu_seconds": cpu}


def extract_commit(commit: str, folder: Path) -> None:
    """The repository's tree at `commit`, written to `folder`."""
    folder.mkdir()
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)


def paired_ratios(runs: list[dict], base: str, other: str) -> dict:
    """Speed of `other` over `base` by wall and by CPU time, repeat k of one against repeat k
    of the other (they ran interleaved)."""
    ratios = [
        (b["seconds"] / o["seconds"], b["cpu_seconds"] / o["cpu_seconds"])
        for b, o in zip(
            [r for r in runs if r["mode"] == base],
            [r for r in runs if r["mode"] == other],
            strict=True,
        )
    ]
    wall, cpu = ([r[k] for r in ratios] for k in (0, 1))
    return {
        "median": round(statistics.median(wall), 2),
        "runs": [round(r, 2) for r in wall],
        "cpu_median": round(statistics.median(cpu), 2),
        "cpu_runs": [round(r, 2) for r in cpu],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode, interleaved")
    parser.add_argument("--shard-records", type=int, default=20_000)
    parser.add_argument(
        "--range-records",
        type=int,
        default=1_000_000,
        help="records per hash range in the global steps (the config's range_records)",
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=[*MODES, BASELINE])
    parser.add_argument(
        "--baseline", default="8ff7d8a", help=f"the commit mode {BASELINE} runs (git archive)"
    )
    parser.add_argument("--quick", action="store_true", help="20k records, one run of each")
    parser.add_argument("--run-one", choices=[*MODES, BASELINE], help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(
            json.dumps(
                run_once(
                    args.source, args.output, args.run_one, args.shard_records, args.range_records
                )
            )
        )
        return
    if args.quick:
        args.records, args.repeats, args.shard_records = 20_000, 1, 5_000
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if BASELINE in args.modes:
            extract_commit(args.baseline, tmp / BASELINE)
        source = tmp / "records.jsonl"
        write_corpus(source, args.records)
        import pandas as pd

        # The parsing floor from the first 100k lines: all of 10M would need tens of GiB.
        parsed = min(args.records, PARSE_SAMPLE)
        start = time.perf_counter()
        pd.read_json(source, lines=True, nrows=parsed)
        parse_rate = parsed / (time.perf_counter() - start)
        runs = []
        for _ in range(args.repeats):
            for mode in args.modes:
                run = measure(source, mode, args.shard_records, args.range_records, tmp)
                runs.append(run)
                print(
                    f"{mode:>6}: {args.records / run['seconds']:>9,.0f} records/s, peak RSS "
                    f"{run['peak_rss_mib']:,.0f} MiB (process tree), {run['seconds']:.1f} s "
                    f"({run['cpu_seconds']:.1f} s CPU), "
                    f"dataset {run['id']}",
                    flush=True,  # a long run's figures survive an interrupted benchmark
                )
    # The whole-batch code hashed the data another way: its dataset id differs, its counts not.
    counts = {
        json.dumps({k: v for k, v in r.items() if k not in MEASURES + ("mode", "id")}) for r in runs
    }
    if len(counts) != 1 or len({r["id"] for r in runs if r["mode"] != BASELINE}) > 1:
        raise SystemExit("the modes gave different datasets")
    summary: dict = {
        "records": args.records,
        "shard_records": args.shard_records,
        "range_records": args.range_records,
        "parse_only_records_per_s": round(parse_rate),
        "whole_batch_committed": WHOLE_BATCH,
        "counts": json.loads(counts.pop()),
    }
    for mode in args.modes:
        mine = [r for r in runs if r["mode"] == mode]
        rates = [args.records / r["seconds"] for r in mine]
        summary[mode] = {
            "records_per_s": round(statistics.median(rates)),
            "records_per_s_runs": [round(r) for r in rates],
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in mine)),
            "vs_whole_batch_committed": round(
                statistics.median(rates) / WHOLE_BATCH["records_per_s"], 2
            ),
        }
    for base, other in ((BASELINE, "single"), (BASELINE, "dask"), ("single", "dask")):
        if {base, other} <= set(args.modes):
            summary[f"{other}_over_{base}".replace("-", "_")] = paired_ratios(runs, base, other)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
