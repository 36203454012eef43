"""The local stack behind `llmops up` / `llmops down`: a Prefect server, an MLflow server and a
process worker per work pool, all on loopback, with the pools and deployments registered.

Every process `up` starts is recorded in <home>/stack/stack.json with its pid *and* start time,
so a recycled pid is never mistaken for ours: `up` starts only what is not running (running it
twice duplicates nothing), `down` stops exactly what is recorded. Logs: <home>/stack/logs/.

Hand-written rather than docker compose (infra/docker-compose.yml is the team setup): the
laptop stack must work without Docker, from the virtual environment alone.
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

from llmops.home import mlflow_tracking_uri, project_home

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
POOLS = ("cpu", "gpu")
SERVERS = ("prefect-server", "mlflow-server")
WORKERS = tuple(f"worker-{pool}" for pool in POOLS)
STARTUP_TIMEOUT_S = 180


class StackError(RuntimeError):
    """A stack component could not start or register; the message says which and where to look."""


@dataclass
class StackState:
    """What `up` started: ports, the deployments' profile, and each process by name."""

    prefect_port: int = 4200
    mlflow_port: int = 5000
    profile: str | None = None
    processes: dict[str, dict] = field(default_factory=dict)

    @property
    def prefect_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    def port(self, name: str) -> int | None:
        """The port a server listens on (workers have none)."""
        return {"prefect-server": self.prefect_port, "mlflow-server": self.mlflow_port}.get(name)

    def running(self) -> list[str]:
        """Names of the recorded processes that are still alive."""
        return [name for name, entry in self.processes.items() if is_running(entry)]


def stack_dir() -> Path:
    """Where the stack keeps its state (stack.json), logs and deployment renderings."""
    return project_home() / "stack"


def state_file() -> Path:
    return stack_dir() / "stack.json"


def load_state() -> StackState | None:
    """The recorded stack, or None when `up` never ran (or `down` cleared it)."""
    path = state_file()
    return StackState(**json.loads(path.read_text())) if path.exists() else None


def save_state(state: StackState) -> None:
    state_file().parent.mkdir(parents=True, exist_ok=True)
    state_file().write_text(json.dumps(state.__dict__, indent=2))


def is_running(entry: dict) -> bool:
    """True when the recorded process is alive and is the one we started (same start time)."""
    try:
        process = psutil.Process(entry["pid"])
        return (
            process.create_time() == entry["create_time"]
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.NoSuchProcess:
        return False


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


def stack_environment(state: StackState) -> dict[str, str]:
    """Environment of every stack process: the project home, this repository (prefect.yaml's
    pull step), the server's API, and the PREFECT_HOME of ephemeral runs: one database, so the
    UI also shows the runs made before `up` (`make demo`), and one result store, so the gpu
    worker's fine-tune result reaches the pipeline on the cpu worker. Postgres instead when
    PREFECT_API_DATABASE_CONNECTION_URL says so (it passes through)."""
    return {
        **os.environ,
        "PREFECT_HOME": str(project_home() / "prefect"),
        "PREFECT_API_URL": f"{state.prefect_url}/api",
        "LLMOPS_HOME": str(project_home()),
        "LLMOPS_PROJECT_DIR": str(REPO),
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri(),
    }


def running_api_url() -> str | None:
    """The API of the Prefect server a still-running `llmops up` started, if any."""
    state = load_state()
    server = state.processes.get("prefect-server") if state else None
    return f"{state.prefect_url}/api" if server and is_running(server) else None


def commands(state: StackState) -> dict[str, list[str]]:
    """The command line of each stack process, by name."""
    bin_dir = Path(sys.executable).parent
    prefect, mlflow = str(bin_dir / "prefect"), str(bin_dir / "mlflow")
    listen = ["--host", HOST, "--port"]
    artifacts = (project_home() / "mlartifacts").as_uri()
    store = ["--backend-store-uri", mlflow_tracking_uri(), "--default-artifact-root", artifacts]
    servers = {
        "prefect-server": [prefect, "server", "start", *listen, str(state.prefect_port)],
        "mlflow-server": [
            mlflow,
            "server",
            *listen,
            str(state.mlflow_port),
            "--workers",
            "1",
            *store,
        ],
    }
    workers = {
        f"worker-{pool}": [prefect, "worker", "start", "--pool", pool, "--name", f"llmops-{pool}"]
        for pool in POOLS
    }
    return {**servers, **workers}


def health_url(name: str, state: StackState) -> str:
    urls = {"prefect-server": f"{state.prefect_url}/api/health"}
    return urls.get(name, f"{state.mlflow_url}/health")


def log_path(name: str) -> Path:
    return stack_dir() / "logs" / f"{name}.log"


def log_tail(name: str, lines: int = 15) -> str:
    path = log_path(name)
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


def start_process(name: str, argv: list[str], env: dict[str, str]) -> dict:
    """Start `argv` detached from this terminal (it outlives `llmops up`), logging to a file."""
    log_path(name).parent.mkdir(parents=True, exist_ok=True)
    with log_path(name).open("ab") as log:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return {"pid": process.pid, "create_time": psutil.Process(process.pid).create_time()}


def is_ready(name: str, state: StackState) -> bool:
    """A server answers its health check; a worker has sent its pool a heartbeat since it
    started (a stale record of an earlier worker with the same name does not count)."""
    try:
        if name in SERVERS:
            return httpx.get(health_url(name, state), timeout=2).status_code == 200
        pool = name.removeprefix("worker-")
        url = f"{state.prefect_url}/api/work_pools/{pool}/workers/filter"
        workers = httpx.post(url, json={}, timeout=5).json()
    except httpx.HTTPError:
        return False
    started = datetime.fromtimestamp(state.processes[name]["create_time"], UTC)
    return any(
        worker["name"] == f"llmops-{pool}"
        and datetime.fromisoformat(worker["last_heartbeat_time"]) >= started
        for worker in workers
        if worker.get("last_heartbeat_time")
    )


def wait_until_ready(name: str, state: StackState) -> None:
    """Poll until `name` is ready; fail fast, with its log, if the process exits."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not is_running(state.processes[name]):
            raise StackError(f"{name} exited while starting; {log_path(name)}:\n{log_tail(name)}")
        if is_ready(name, state):
            return
        time.sleep(0.5)
    raise StackError(f"{name} not ready in {STARTUP_TIMEOUT_S} s; see {log_path(name)}")


def run_step(what: str, argv: list[str], env: dict[str, str]) -> None:
    """Run a registration command to completion; its output becomes the error when it fails."""
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise StackError(f"{what} failed ({' '.join(argv[:3])} ...):\n" + "\n".join(output))


def deployment_file(profile: str | None, env: dict[str, str]) -> Path:
    """prefect.yaml itself, or a rendering of it with every deployment on `profile`."""
    if profile is None:
        return REPO / "prefect.yaml"
    rendered = stack_dir() / f"prefect-{profile}.yaml"
    render = [sys.executable, str(REPO / "deployments" / "render.py")]
    run_step(
        "rendering deployments", [*render, "--profile", profile, "--output", str(rendered)], env
    )
    return rendered


def register(state: StackState, env: dict[str, str], report: Callable[[str], None]) -> None:
    """Create or update the work pools (infra/pools.sh) and every deployment (upserts)."""
    prefect = str(Path(sys.executable).parent / "prefect")
    run_step("work pools", ["bash", str(REPO / "infra" / "pools.sh")], {**env, "PREFECT": prefect})
    report(f"work pools {', '.join(POOLS)} registered (infra/pools.sh)")
    spec = deployment_file(state.profile, env)
    run_step(
        "deploy", [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(spec)], env
    )
    report(f"deployments registered from {spec.name} (profile: {state.profile or 'their own'})")


def ensure_started(
    name: str, state: StackState, env: dict[str, str], report: Callable[[str], None]
) -> None:
    """Start `name` unless the recorded process is alive, and wait until it is ready."""
    if name in state.processes and is_running(state.processes[name]):
        report(f"{name} already running (pid {state.processes[name]['pid']})")
        return
    port = state.port(name)
    if port is not None and port_in_use(port):
        raise StackError(f"port {port} for {name} is taken by another program; choose another")
    started = time.monotonic()
    state.processes[name] = start_process(name, commands(state)[name], env)
    save_state(state)
    wait_until_ready(name, state)
    report(f"{name} ready in {time.monotonic() - started:.1f} s (log: {log_path(name)})")


def up(
    prefect_port: int = 4200,
    mlflow_port: int = 5000,
    profile: str | None = None,
    report: Callable[[str], None] = print,
) -> StackState:
    """Start what is not running, register pools and deployments, return the stack."""
    recorded = load_state()
    if recorded and recorded.running():
        # The stack is (partly) up: keep its ports, so a second `up` never starts a second one.
        state = recorded
        state.profile = profile
    else:
        state = StackState(prefect_port, mlflow_port, profile)
    env = stack_environment(state)
    for name in SERVERS:
        ensure_started(name, state, env, report)
    register(state, env, report)
    for name in WORKERS:
        ensure_started(name, state, env, report)
    save_state(state)
    return state


def stop_process(entry: dict) -> None:
    """Stop a recorded process and everything it spawned (server children, flow runs)."""
    try:
        root = psutil.Process(entry["pid"])
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with suppress(psutil.NoSuchProcess):  # exited between listing and signalling
            process.terminate()
    _, alive = psutil.wait_procs(family, timeout=20)
    for process in alive:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def down(report: Callable[[str], None] = print) -> list[str]:
    """Stop exactly the processes `up` recorded (workers first), forget them, return their names."""
    state = load_state()
    if state is None:
        report("nothing to stop: no stack recorded in " + str(state_file()))
        return []
    stopped = []
    for name in reversed([*SERVERS, *WORKERS]):
        entry = state.processes.get(name)
        if entry and is_running(entry):
            stop_process(entry)
            stopped.append(name)
            report(f"{name} stopped (pid {entry['pid']})")
    state_file().unlink()
    return stopped
