"""The local stack on a real `prefect server start` (`llmops up --profile tiny` on free loopback
ports, a temp project home with its SQLite stores): deployments from prefect.yaml with their
schedules, a process worker per pool, and each retraining trigger driven end to end.

The tests share one stack and run in file order (landing, drift, feedback, down); together they
take about two and a half minutes on two cores. Event -> flow-run latencies are printed (pytest -s).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from net_support import free_port
from stack_support import (
    api,
    deployment,
    event_times,
    flow_runs,
    parse_time,
    runs_with_reason,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
LLMOPS = str(Path(sys.executable).parent / "llmops")
EXPECTED = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]

pytestmark = pytest.mark.timeout(1200)


@dataclass
class Stack:
    url: str
    home: Path
    env: dict[str, str]
    up_output: str

    def llmops(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [LLMOPS, *args], env=self.env, capture_output=True, text=True, timeout=900
        )

    def run_deployment(self, name: str, config: dict) -> subprocess.CompletedProcess:
        """Run a deployment on the stack's workers, as the UI's Run button does; wait for it."""
        prefect = str(Path(sys.executable).parent / "prefect")
        command = [prefect, "deployment", "run", name, "--params", json.dumps({"config": config})]
        return subprocess.run(
            [*command, "--watch", "--watch-interval", "2"],
            env={**self.env, "PREFECT_API_URL": f"{self.url}/api"},
            capture_output=True,
            text=True,
            timeout=300,
        )

    def retrain_id(self) -> str:
        return deployment(self.url, "retrain", "retrain")["id"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("stack-home")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PREFECT_API_URL", "PREFECT_HOME", "MLFLOW_TRACKING_URI"}
    }
    # Workers poll every 10 s by default; 2 s keeps the test short, not the latency honest.
    env.update({"LLMOPS_HOME": str(home), "PREFECT_WORKER_QUERY_SECONDS": "2"})
    prefect_port, mlflow_port = free_port(), free_port()
    ports = ["--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port)]
    started = Stack(f"http://127.0.0.1:{prefect_port}", home, env, "")
    up = started.llmops("up", "--profile", "tiny", *ports)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        started.up_output = up.stdout
        yield started
    finally:
        started.llmops("down")


def test_up_registers_deployments_schedules_pools_and_workers_once(stack: Stack):
    assert f"Prefect UI: {stack.url}" in stack.up_output
    assert "MLflow UI: " in stack.up_output

    def inventory() -> dict:
        deployments = api(stack.url, "POST", "/deployments/filter", {})
        return {
            "deployments": sorted(d["name"] for d in deployments),
            "automations": sorted(
                a["name"] for a in api(stack.url, "POST", "/automations/filter", {})
            ),
            "workers": {
                pool: sorted(
                    w["name"]
                    for w in api(stack.url, "POST", f"/work_pools/{pool}/workers/filter", {})
                )
                for pool in ("cpu", "gpu")
            },
        }

    def workers_reported() -> dict | None:
        found = inventory()
        return found if all(found["workers"].values()) else None

    first = wait_for("both workers to report", workers_reported, 60)
    assert first["deployments"] == sorted(d["name"] for d in EXPECTED)
    # landed, drift, feedback, preference signals (dpo), the release evaluation after feedback,
    # and the requeue of fine-tuning runs whose worker died
    assert len(first["automations"]) == 6
    assert first["workers"] == {"cpu": ["llmops-cpu"], "gpu": ["llmops-gpu"]}

    retrain = deployment(stack.url, "retrain", "retrain")
    assert [s["schedule"]["cron"] for s in retrain["schedules"]] == ["0 3 * * *"]
    assert [s["active"] for s in retrain["schedules"]] == [False]  # paused but for gpu
    hourly = deployment(stack.url, "monitor", "drift-check-hourly")
    assert [s["schedule"]["cron"] for s in hourly["schedules"]] == ["0 * * * *"]
    assert deployment(stack.url, "finetune", "finetune-gpu")["work_pool_name"] == "gpu"

    again = stack.llmops("up", "--profile", "tiny")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already running") == 4
    assert inventory() == first


def test_prefect_ui_shows_the_deployments_with_their_schedules(stack: Stack):
    """What a person sees: headless Chromium renders the UI's deployments page (a JS app)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium package (apt-get install chromium)")

    def render(path: str) -> str:
        return subprocess.run(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu"]
            + ["--virtual-time-budget=20000", "--dump-dom", f"{stack.url}{path}"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout

    names = sorted(d["name"] for d in EXPECTED)
    page = render("/deployments")
    # The list shows 10 deployments a page, by name; the rest are read on their own pages.
    assert all(name in page for name in names[:10])
    for name in names[10:]:
        [found] = api(
            stack.url, "POST", "/deployments/filter", {"deployments": {"name": {"any_": [name]}}}
        )
        detail = render(f"/deployments/deployment/{found['id']}")
        assert name in detail
        page += detail
    for schedule in ("At 03:00 AM every day", "Every hour every day", "Every minute"):
        assert schedule in page


def test_landed_file_leads_to_a_completed_retrain_with_its_data(stack: Stack, tmp_path: Path):
    landing = tmp_path / "landing"
    landing.mkdir()
    landed = landing / "batch1.jsonl"
    record = {
        "id": "landed-1",
        "prompt": "Can I print a notebook?",
        "response": "Yes: File > Print.",
    }
    landed.write_text(json.dumps(record) + "\n")

    watch = stack.run_deployment("watch/watch-landing", {"landing": str(landing)})
    assert watch.returncode == 0 and "Completed" in watch.stdout, watch.stdout + watch.stderr

    retrain_id = stack.retrain_id()
    run = wait_for(
        "the landed-data retrain to finish",
        lambda: [r for r in flow_runs(stack.url, retrain_id) if r["state_type"] in FINAL],
        600,
        every_s=2,
    )[0]
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["name"] == "retrain: llmops.dataset.landed"
    assert run["parameters"]["config"]["new_data"] == str(landed)

    occurred = stored_events(stack, "llmops.dataset.landed", 1)[-1]
    print(
        f"\nlanded event -> retrain run created {seconds(occurred, run['created']):.2f} s, "
        f"started {seconds(occurred, run['start_time']):.2f} s"
    )
    finetunes = flow_runs(stack.url, deployment(stack.url, "finetune", "finetune-gpu")["id"])
    assert [(r["work_pool_name"], r["state_type"]) for r in finetunes] == [("gpu", "COMPLETED")]
    manifest = json.loads(next((stack.home / "datasets").glob("*/manifest.json")).read_text())
    assert str(landed) in manifest["sources"]
    assert manifest["counts"]["total"] == 368  # the bundled sample + the landed record


def test_drift_event_triggers_a_retrain(stack: Stack):
    emit_events(stack, "drift", 1)
    run = wait_for(
        "a drift-triggered retrain run",
        lambda: runs_with_reason(stack.url, stack.retrain_id(), "llmops.drift.detected"),
        60,
    )[0]
    occurred = stored_events(stack, "llmops.drift.detected", 1)[-1]
    latency = seconds(occurred, run["created"])
    print(f"\ndrift event -> retrain run created {latency:.2f} s")
    # The trigger filled the run from the event: why it runs, no new data, fine-tuning on gpu.
    config = run["parameters"]["config"]
    assert config["new_data"] == [] and config["finetune_deployment"] == "finetune/finetune-gpu"
    assert config["profile"] == "tiny" and 0 <= latency < 30


def test_feedback_threshold_triggers_exactly_one_retrain(stack: Stack):
    # 60 events: the trigger fires once at the 50th; the 10 after it do not reach 50 again.
    emit_events(stack, "feedback", 60)
    reason = "llmops.feedback.received"
    wait_for(
        "a feedback-triggered retrain run",
        lambda: runs_with_reason(stack.url, stack.retrain_id(), reason),
        60,
    )
    fiftieth = stored_events(stack, reason, 50)[49]
    time.sleep(15)  # give a second firing every chance to show up before counting
    runs = runs_with_reason(stack.url, stack.retrain_id(), reason)
    assert len(runs) == 1
    latency = seconds(fiftieth, runs[0]["created"])
    print(f"\n50th feedback event -> retrain run created {latency:.2f} s")


def test_down_stops_exactly_what_up_started(stack: Stack):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    recorded = json.loads((stack.home / "stack" / "stack.json").read_text())["processes"]
    down = stack.llmops("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [name for name, p in recorded.items() if psutil.pid_exists(p["pid"])]
    assert bystander.poll() is None
    bystander.kill()
    assert not (stack.home / "stack" / "stack.json").exists()
    assert "nothing to stop" in stack.llmops("down").stdout


FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def emit_events(stack: Stack, kind: str, count: int) -> None:
    env = {**stack.env, "PREFECT_API_URL": f"{stack.url}/api"}
    # -P: not tests/ first on sys.path, where tests/llmops/ would shadow the llmops package.
    emitter = [sys.executable, "-P", str(ROOT / "tests" / "stack_support.py"), kind, str(count)]
    done = subprocess.run(emitter, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def stored_events(stack: Stack, event: str, count: int) -> list:
    """When the first `count` events occurred; triggers see events before the server stores
    them (it writes them in batches), so wait for them to be stored."""

    def stored() -> list | None:
        times = event_times(stack.url, event)
        return times if len(times) >= count else None

    return wait_for(f"{count} x {event} stored", stored, 30)


def seconds(since, until: str) -> float:
    return (parse_time(until) - since).total_seconds()
