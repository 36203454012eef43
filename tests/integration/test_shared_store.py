"""Three fresh project homes that share only the object store (moto's S3 server) and the
tracking store, each deleted before the next starts, through the `llmops` CLI:

    home 1: llmops prepare          -> the dataset lands in s3://
    home 2: llmops finetune <s3 URL> -> trains, checkpoints and the adapter go to the store
    home 3: llmops finetune <s3 URL> -> finds the finished run there instead of training again
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import s3fs
from net_support import s3_environment

LLMOPS = str(Path(sys.executable).parent / "llmops")
STORE = "s3://shared-store/llmops"


def run_in_fresh_home(root: Path, env: dict[str, str], *args: str) -> str:
    """Run one llmops command in a new home (its own HOME and working directory too), delete
    the home afterwards, and return what the command printed."""
    home = root / "home"
    home.mkdir(parents=True)
    env = {**env, "LLMOPS_HOME": str(home / ".llmops"), "HOME": str(home)}
    done = subprocess.run(
        [LLMOPS, *args], env=env, cwd=home, capture_output=True, text=True, timeout=600
    )
    shutil.rmtree(root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_a_third_fresh_home_reuses_the_run_the_second_trained(s3_server: str, tmp_path: Path):
    s3 = s3fs.S3FileSystem(
        key="testing", secret="testing", client_kwargs={"endpoint_url": s3_server}
    )
    s3.mkdir("shared-store")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_", "LLMOPS_", "AWS_"))
    }
    env.update(s3_environment(s3_server))
    env.update(
        LLMOPS_STORE=STORE,
        # The team's tracking store, outside every home (a tracking server in the team stack).
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'tracking' / 'mlflow.db'}",
    )
    (tmp_path / "tracking").mkdir()

    prepared = run_in_fresh_home(tmp_path / "one", env, "prepare", "--profile", "tiny")
    dataset = next(line for line in prepared.splitlines() if line.startswith("dataset "))
    uri = dataset.split(" -> ")[1]
    assert uri.startswith(f"{STORE}/datasets/")

    def finetune(home: str) -> dict:
        out = run_in_fresh_home(tmp_path / home, env, "finetune", uri, "--profile", "tiny")
        # The TrainedAdapter is printed as indented JSON between Prefect's log lines.
        lines = out.splitlines()
        start, end = lines.index("{"), len(lines) - lines[::-1].index("}")
        return json.loads("\n".join(lines[start:end]))

    trained = finetune("two")
    assert not trained["reused"] and trained["run_uri"].startswith(f"{STORE}/runs/")
    assert trained["metrics"]["checkpoint_saves"] == 3  # every 2 of 6 steps, into the store
    again = finetune("three")
    assert again["reused"]
    assert again["training_run_id"] == trained["training_run_id"]
    assert {**again, "reused": False} == trained
