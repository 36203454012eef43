"""Whole `prepare` flow throughput (records/s) and peak memory on N short records, against the
floor of merely parsing the same file with pandas, measured in the same run.

    .venv/bin/python benchmarks/bench_prepare.py --records 1000000
"""

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

from llmops.home import configure_environment

configure_environment()

import pandas as pd  # noqa: E402

from flows.prepare import PrepareConfig, prepare  # noqa: E402

WORDS = [f"topic{i}" for i in range(12)]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "records.jsonl"
        write_corpus(source, args.records)
        start = time.perf_counter()
        pd.read_json(source, lines=True)
        floor = time.perf_counter() - start
        start = time.perf_counter()
        manifest = prepare(
            PrepareConfig.from_profile("cpu", sources=[str(source)], output=str(Path(tmp) / "out"))
        )
        elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.records} records: counts {manifest['counts']}")
    print(f"pandas read_json only: {args.records / floor:>10.0f} records/s")
    print(
        f"prepare flow:          {args.records / elapsed:>10.0f} records/s "
        f"({elapsed / floor:.1f}x the parse-only time), peak RSS {peak_mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
