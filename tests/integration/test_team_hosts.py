"""The team stack across four hosts that share no disk (network namespaces where the machine
allows it, else processes on loopback), each with its own project home, working directory and
HOME:

    control  `llmops up --team`: Prefect and MLflow servers on PostgreSQL, moto's S3 server
             (the object store), no workers
    cpu      `llmops worker --pool cpu`        gpu   `llmops worker --pool gpu`
    serving  `llmops serve` of the champion

A file lands in s3://team/landing/ -> watch (cpu) -> llmops.dataset.landed -> retrain (cpu):
prepare (cpu) -> fine-tune (gpu) -> evaluate and promote (cpu) -> the serving host hot-swaps to
the new champion, after the gpu host is already gone. Then a gpu host is killed (kill -9)
mid-training; a worker on a fresh host takes the requeued run and resumes from the store's
last complete checkpoint. Latencies and checkpoint upload costs are printed (pytest -s).
"""

import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import s3fs
from hosts_support import Host, Network, can_use_namespaces
from net_support import free_port, s3_environment
from stack_support import api, deployment, event_times, flow_runs, parse_time, wait_for

from llmops.outputs import TrainedAdapter

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL = "llmops-test-assistant"  # the tiny profiles' registered model
BUCKET = "team"
STORE = f"s3://{BUCKET}/llmops"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = pytest.mark.timeout(1800)

# Registers an adapter equal to the base model (LoRA B = 0) as the first champion, the way an
# admin seeds the registry, so that serving has a model before the first retrain.
SEED = f"""
import sys
from pathlib import Path
from llmops.model import registry
sys.path.append({str(ROOT / "tests")!r})
from model_support import make_tiny_adapter
adapter, base = make_tiny_adapter(Path("seed-adapter"))
version = registry.register_adapter("{MODEL}", str(adapter), base.ref, base.sha256, None, {{}})
registry.promote_version("{MODEL}", version)
print(version)
"""


@dataclass
class Team:
    network: Network
    bind: str  # where servers listen on their host
    ports: dict[str, int]
    s3: s3fs.S3FileSystem  # the test's own view of the store

    @property
    def prefect(self) -> str:
        """The Prefect server as this test process reaches it."""
        return f"http://{self.network.control.address}:{self.ports['prefect']}"

    def host_settings(self, host: Host) -> dict[str, str]:
        """The three settings of a team host, plus access to the S3 stand-in."""
        reach = host.control_address
        return {
            "PREFECT_API_URL": f"http://{reach}:{self.ports['prefect']}/api",
            "MLFLOW_TRACKING_URI": f"http://{reach}:{self.ports['mlflow']}",
            "LLMOPS_STORE": STORE,
            **s3_environment(f"http://{reach}:{self.ports['s3']}"),
        }

    def start_worker(self, host: Host, pool: str) -> None:
        # Workers poll every 10 s by default; 2 s keeps the test short.
        env = host.environment(**self.host_settings(host), PREFECT_WORKER_QUERY_SECONDS="2")
        host.start(
            f"worker-{pool}",
            [str(BIN / "llmops"), "worker", "--pool", pool, "--name", host.name],
            env,
        )
        wait_for(
            f"worker {host.name} to report",
            lambda: any(
                w["name"] == host.name and w["status"] == "ONLINE"
                for w in api(self.prefect, "POST", f"/work_pools/{pool}/workers/filter", {})
            ),
            90,
        )

    def run_deployment(self, flow: str, name: str, config: dict) -> str:
        """Start a deployment run (the UI's Run button); returns the flow run id."""
        found = deployment(self.prefect, flow, name)
        body = {"parameters": {"config": config}}
        return api(self.prefect, "POST", f"/deployments/{found['id']}/create_flow_run", body)["id"]

    def flow_run(self, run_id: str) -> dict:
        return api(self.prefect, "GET", f"/flow_runs/{run_id}")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    from llmops.postgres import PostgresUnavailableError, bin_dir

    try:
        bin_dir()
    except PostgresUnavailableError as error:
        pytest.skip(f"the team stack needs PostgreSQL: {error}")
    network = Network(tmp_path_factory.mktemp("hosts"), can_use_namespaces())
    control = network.control
    bind = "0.0.0.0" if network.use_namespaces else "127.0.0.1"
    ports = {name: free_port() for name in ("s3", "prefect", "mlflow", "postgres")}
    settings = {"LLMOPS_STORE": STORE, **s3_environment(f"http://127.0.0.1:{ports['s3']}")}
    env = control.environment(**settings)
    try:
        control.start("s3", [str(BIN / "moto_server"), "-H", bind, "-p", str(ports["s3"])], env)
        s3_url = f"http://{control.address}:{ports['s3']}"
        s3 = s3fs.S3FileSystem(
            key="testing", secret="testing", client_kwargs={"endpoint_url": s3_url}
        )
        wait_for("the S3 stand-in", lambda: _answers(s3_url), 60, every_s=0.5)
        s3.mkdir(BUCKET)
        up = control.run(
            [str(BIN / "llmops"), "up", "--team", "--profile", "tiny", "--host", bind]
            + ["--no-workers", "--prefect-port", str(ports["prefect"])]
            + ["--mlflow-port", str(ports["mlflow"]), "--postgres-port", str(ports["postgres"])],
            env,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert "postgres ready" in up.stdout and "Prefect results kept in the store" in up.stdout
        yield Team(network, bind, ports, s3)
    finally:
        control.run([str(BIN / "llmops"), "down"], env, timeout=120)
        network.close()
        from llmops.postgres import data_dir_for

        shutil.rmtree(data_dir_for(control.home), ignore_errors=True)


def _answers(url: str) -> bool:
    """Whether a server listens at `url` (any HTTP answer will do)."""
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def champion_version(team: Team, host: Host, port: int) -> str | None:
    """The version the serving host answers with (its /v1/models checks the alias first)."""
    try:
        models = httpx.get(f"http://{host.address}:{port}/v1/models", timeout=5).json()
    except httpx.HTTPError:
        return None
    return models["data"][0]["version"]


def test_landed_file_flows_through_hosts_that_share_no_disk(team: Team):
    network = team.network
    cpu, gpu, serving = (network.add_host(name) for name in ("cpu", "gpu", "serving"))
    team.start_worker(cpu, "cpu")
    team.start_worker(gpu, "gpu")

    seed_env = network.control.environment(**team.host_settings(network.control))
    seeded = network.control.run([sys.executable, "-P", "-c", SEED], seed_env)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    first = seeded.stdout.split()[-1]

    serve_port = free_port()
    serve = [str(BIN / "llmops"), "serve", "--profile", "tiny", "--no-api-key"]
    serve += ["--host", team.bind, "--port", str(serve_port)]
    serving.start("serve", serve, serving.environment(**team.host_settings(serving)))
    wait_for(
        "the serving host to answer with the seeded champion",
        lambda: champion_version(team, serving, serve_port) == first,
        180,
    )

    landed = f"{BUCKET}/landing/batch1.jsonl"
    record = {
        "id": "landed-1",
        "prompt": "Can I print a notebook?",
        "response": "Yes: File > Print.",
    }
    team.s3.pipe(landed, (json.dumps(record) + "\n").encode())
    watch = team.run_deployment("watch", "watch-landing", {"landing": f"s3://{BUCKET}/landing"})
    wait_for("the watch run", lambda: team.flow_run(watch)["state_type"] in FINAL, 120)
    assert team.flow_run(watch)["state_type"] == "COMPLETED"

    finetune_id = deployment(team.prefect, "finetune", "finetune-gpu")["id"]
    trained = wait_for(
        "the fine-tuning run on the gpu host",
        lambda: [r for r in flow_runs(team.prefect, finetune_id) if r["state_type"] in FINAL],
        600,
        every_s=0.3,
    )[0]
    assert trained["state_type"] == "COMPLETED", trained["state"]
    gpu.kill()
    gpu.wipe()  # the gpu host is gone before evaluation, promotion and the swap
    gone_at = time.time()

    second = wait_for(
        "the serving host to hot-swap to the new champion",
        lambda: (v := champion_version(team, serving, serve_port)) != first and v,
        600,
        every_s=0.3,
    )
    swapped_at = time.time()
    assert swapped_at > gone_at and not gpu.root.exists()

    retrain_id = deployment(team.prefect, "retrain", "retrain")["id"]
    [retrain] = flow_runs(team.prefect, retrain_id)
    retrain = wait_for(
        "the retrain run to finish",
        lambda: (r := team.flow_run(retrain["id"]))["state_type"] in FINAL and r,
        120,
    )
    assert retrain["state_type"] == "COMPLETED", retrain["state"]
    assert retrain["name"] == "retrain: llmops.dataset.landed"
    assert retrain["parameters"]["config"]["new_data"] == f"s3://{landed}"
    assert trained["work_pool_name"] == "gpu" and retrain["work_pool_name"] == "cpu"
    assert int(second) > int(first)

    # Shared nothing but the servers and the store: the data lives in S3, on no host's disk.
    team.s3.invalidate_cache()  # s3fs caches listings; the hosts wrote behind its back
    manifests = team.s3.glob(f"{STORE.removeprefix('s3://')}/datasets/*/manifest.json")
    [manifest] = [json.loads(team.s3.cat(m)) for m in manifests]
    assert f"s3://{landed}" in manifest["sources"]
    for host in (cpu, serving, network.control):
        assert not (host.home / "datasets").exists() and not (host.home / "runs").exists()

    occurred = event_times(team.prefect, "llmops.dataset.landed")[-1]
    print(
        f"\n[{'netns' if network.use_namespaces else 'loopback'}] landed event -> retrain run "
        f"created {seconds(occurred, retrain['created']):.2f} s, started on the cpu host "
        f"{seconds(occurred, retrain['start_time']):.2f} s; fine-tuning started on the gpu host "
        f"{seconds(occurred, trained['start_time']):.2f} s after the event; the serving host "
        f"swapped v{first} -> v{second} {swapped_at - gone_at:.1f} s after the gpu host was deleted"
    )


def test_a_killed_gpu_host_resumes_on_a_fresh_one_from_the_last_checkpoint(team: Team):
    network = team.network
    datasets = team.s3.glob(f"{STORE.removeprefix('s3://')}/datasets/*/manifest.json")
    assert datasets, "needs the dataset the first test prepared"
    dataset = "s3://" + datasets[0].removesuffix("/manifest.json")
    runs = f"{STORE.removeprefix('s3://')}/runs"
    before = set(team.s3.ls(runs)) if team.s3.exists(runs) else set()

    host_a = network.add_host("gpu-a")
    team.start_worker(host_a, "gpu")
    config = {
        "dataset": dataset,
        "base_model": "tiny-random",
        "lora_rank": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "learning_rate": 5e-3,
        "max_steps": 120,
        "batch_size": 4,
        "max_seq_len": 256,
        "save_every": 10,
        "log_every": 10,
    }
    run_id = team.run_deployment("finetune", "finetune-gpu", config)

    def complete_checkpoints() -> list[str]:
        team.s3.invalidate_cache()  # s3fs caches listings; the gpu host writes behind its back
        return [
            path
            for path in team.s3.glob(f"{runs}/*/checkpoints/*/llmops-complete.json")
            if path.split("/checkpoints/")[0] not in before
        ]

    marker = wait_for("a complete checkpoint in the store", complete_checkpoints, 300, every_s=0.2)[
        0
    ]
    host_a.kill()  # the whole machine, mid-training
    host_a.wipe()
    killed_at = time.time()
    run_folder = marker.split("/checkpoints/")[0]
    stored_steps = [int(p.split("checkpoint-")[1].split("/")[0]) for p in complete_checkpoints()]
    assert team.flow_run(run_id)["state_type"] == "RUNNING"  # nobody has told the server

    host_b = network.add_host("gpu-b")  # a new machine: empty disk, nothing of host a
    team.start_worker(host_b, "gpu")
    finished = wait_for(
        "the requeued run to finish on the fresh gpu host",
        lambda: (r := team.flow_run(run_id))["state_type"] in FINAL and r,
        600,
        every_s=1,
    )
    assert finished["state_type"] == "COMPLETED", finished["state"]
    states = api(team.prefect, "GET", f"/flow_run_states/?flow_run_id={run_id}")
    assert "Requeued" in [s["name"] for s in states]
    team.s3.invalidate_cache()
    result = TrainedAdapter.model_validate_json(team.s3.cat(f"{run_folder}/trained.json"))
    assert result.metrics["global_step"] == 120
    assert result.metrics["resumed_from_step"] >= min(stored_steps) > 0
    requeued = next(s for s in states if s["name"] == "Requeued")
    print(
        f"\nkilled gpu host at a complete checkpoint of step {max(stored_steps)}; requeued "
        f"{parse_time(requeued['timestamp']).timestamp() - killed_at:.0f} s later; resumed on "
        f"a fresh host from step {result.metrics['resumed_from_step']:.0f}; checkpoint upload "
        f"{result.metrics['checkpoint_upload_seconds']:.3f} s and "
        f"{result.metrics['checkpoint_upload_bytes'] / 1e3:.0f} kB per save "
        f"({result.metrics['checkpoint_saves']:.0f} saves after the resume)"
    )


def seconds(since, until: str) -> float:
    return (parse_time(until) - since).total_seconds()
