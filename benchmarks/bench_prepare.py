"""Whole `prepare` flow throughput (records/s) and peak memory (RSS of the whole process tree,
Dask workers included) on N short records: the sharded flow in one process (threads) and on a
local Dask cluster (`dask_address: local`), interleaved A B A B in one run, each run in a fresh
process; against the committed figure of the whole-batch flow this replaced (4,935 records/s,
6.9 GiB peak on 1M records) and the floor of merely parsing the file with pandas.

    .venv/bin/python benchmarks/bench_prepare.py --records 1000000
    .venv/bin/python benchmarks/bench_prepare.py --quick          # 20k records, one run each

The last line is one JSON summary. Both modes must give the same dataset (id and counts): the
benchmark fails otherwise.
"""

import argparse
import json
import random
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


def run_once(source: str, output: str, mode: str, shard_records: int) -> dict:
    """One prepare run in this process (what the parent measures from outside)."""
    from llmops.home import configure_environment

    configure_environment()
    from flows.prepare import prepare
    from llmops.flow_configs import PrepareConfig

    config = PrepareConfig.from_profile(
        "cpu",
        sources=[source],
        output=output,
        shard_records=shard_records,
        dask_address=MODES[mode],
        eda=False,
    )
    start = time.perf_counter()
    dataset = prepare(config)
    return {"seconds": time.perf_counter() - start, "id": dataset.dataset_id, **dataset.counts}


def measure(source: Path, mode: str, shard_records: int, tmp: Path) -> dict:
    """Run one mode in a child process; sample the RSS of it and its descendants."""
    output = tempfile.mkdtemp(dir=tmp)
    child = subprocess.Popen(
        [sys.executable, __file__, "--run-one", mode, "--source", str(source)]
        + ["--output", output, "--shard-records", str(shard_records)],
        stdout=subprocess.PIPE,
        text=True,
    )
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
    result = json.loads(child.stdout.read().strip().splitlines()[-1])
    return {**result, "mode": mode, "peak_rss_mib": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode, interleaved")
    parser.add_argument("--shard-records", type=int, default=20_000)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--quick", action="store_true", help="20k records, one run of each")
    parser.add_argument("--run-one", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_once(args.source, args.output, args.run_one, args.shard_records)))
        return
    if args.quick:
        args.records, args.repeats, args.shard_records = 20_000, 1, 5_000
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        source = tmp / "records.jsonl"
        write_corpus(source, args.records)
        import pandas as pd

        start = time.perf_counter()
        pd.read_json(source, lines=True)
        parse_rate = args.records / (time.perf_counter() - start)
        runs = []
        for _ in range(args.repeats):
            for mode in args.modes:
                run = measure(source, mode, args.shard_records, tmp)
                runs.append(run)
                print(
                    f"{mode:>6}: {args.records / run['seconds']:>9,.0f} records/s, peak RSS "
                    f"{run['peak_rss_mib']:,.0f} MiB (process tree), {run['seconds']:.1f} s, "
                    f"dataset {run['id']}",
                    flush=True,  # a long run's figures survive an interrupted benchmark
                )
    if len({(r["id"], r["accepted"], r["exact_duplicates"]) for r in runs}) != 1:
        raise SystemExit("the modes gave different datasets")
    summary: dict = {
        "records": args.records,
        "shard_records": args.shard_records,
        "parse_only_records_per_s": round(parse_rate),
        "whole_batch_committed": WHOLE_BATCH,
        "counts": {k: v for k, v in runs[0].items() if k not in ("seconds", "mode", "id")},
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
    if {"single", "dask"} <= set(args.modes):
        ratios = [
            (args.records / d["seconds"]) / (args.records / s["seconds"])
            for s, d in zip(runs[0::2], runs[1::2], strict=True)
        ]
        summary["dask_over_single"] = {
            "median": round(statistics.median(ratios), 2),
            "runs": [round(r, 2) for r in ratios],
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
