"""The main job with the store in the project home vs in S3 (moto's S3 server on loopback, the
stand-in for a team's object store), in one run, each in a fresh project home.

    .venv/bin/python benchmarks/bench_store.py --profile cpu    # the README figure, ~12 min
    .venv/bin/python benchmarks/bench_store.py --profile tiny   # a quick check, ~2 min

Prints each run's wall time, the S3/local ratio, and the checkpoint mirroring cost per save
(seconds and bytes, from the run's TrainedAdapter). MLflow stays on SQLite in each home, so the
difference is the store alone: datasets, checkpoints, the adapter, reports, results.
"""

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

import s3fs
from main_job import time_main_job
from moto.server import ThreadedMotoServer


def run_main_job(profile: str, env: dict[str, str]) -> float:
    """`llmops run --profile P` in a fresh home; returns its wall time in seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-store-home-") as home:
        wall, output = time_main_job(profile, {**env, "LLMOPS_HOME": home})
        summary = output[output.index("=== training pipeline finished ===") :]
        print("\n".join(f"    {line}" for line in summary.splitlines()[:14]))
        if "LLMOPS_STORE" not in env:
            print_upload_cost([p.read_text() for p in Path(home).glob("runs/*/trained.json")])
    return wall


def print_upload_cost(trained_records: list[str]) -> None:
    """Checkpoint mirroring cost per save, from each finished run's TrainedAdapter (JSON)."""
    for record in trained_records:
        metrics = json.loads(record)["metrics"]
        if "checkpoint_saves" in metrics:
            print(
                f"    checkpoints: {metrics['checkpoint_saves']:.0f} saves, "
                f"{metrics['checkpoint_upload_seconds'] * 1000:.0f} ms and "
                f"{metrics['checkpoint_upload_bytes'] / 1e6:.2f} MB per save"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", help="Profile of the main job.")
    args = parser.parse_args()

    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_", "LLMOPS_", "AWS_"))
    }
    print(f"local store (the project home), profile {args.profile}:")
    local = run_main_job(args.profile, base)
    print(f"  {local:.1f} s")

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    s3 = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    fs = s3fs.S3FileSystem(key="bench", secret="bench", client_kwargs={"endpoint_url": endpoint})
    fs.mkdir("bench")
    print(f"S3 store (moto on {endpoint}), profile {args.profile}:")
    remote = run_main_job(args.profile, {**base, **s3, "LLMOPS_STORE": "s3://bench/llmops"})
    print(f"  {remote:.1f} s")
    fs.invalidate_cache()
    print_upload_cost([fs.cat(p).decode() for p in fs.glob("bench/llmops/runs/*/trained.json")])
    server.stop()
    print(f"S3 / local: {remote / local:.2f}x")


if __name__ == "__main__":
    main()
