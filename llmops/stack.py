"""The stack behind `llmops up` / `llmops down`: a Prefect server, an MLflow server and a process
worker per work pool, with the pools, deployments and automations registered.

Two shapes:
    laptop (default)  SQLite stores in the project home, everything on loopback.
    team (--team)     Prefect and MLflow on PostgreSQL (a URL given, or a cluster of the stack's
                      own), MLflow artifacts proxied into the store, Prefect results in the store:
                      a worker on another host needs only PREFECT_API_URL, MLFLOW_TRACKING_URI
                      and LLMOPS_STORE (`llmops worker --pool gpu`).

Every process `up` starts is recorded in <home>/stack/stack.json with its pid *and* start time,
so a recycled pid is never mistaken for ours: `up` starts only what is not running (running it
twice duplicates nothing), `down` stops exactly what is recorded. Logs: <home>/stack/logs/.

Hand-written rather than docker compose (infra/docker-compose.yml is the team setup in
containers): the stack must work without Docker, from the virtual environment alone. Prefect is
imported inside functions only: `llmops.home.configure_environment` imports this module before
Prefect reads its settings.
"""

import json
import os
import re
import signal
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
import yaml

from llmops import postgres
from llmops.home import mlflow_tracking_uri, project_home
from llmops.store import STORE_ENV, join, store_root

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
POOLS = ("cpu", "gpu")
SERVERS = ("postgres", "prefect-server", "mlflow-server")
WORKERS = tuple(f"worker-{pool}" for pool in POOLS)
STARTUP_TIMEOUT_S = 180
AUTOMATIONS = REPO / "deployments" / "automations.yaml"
RESULT_STORAGE_BLOCK = "llmops-results"
# The abuse alert's notification block, saved by `up` when the webhook's URL is set.
ALERT_WEBHOOK_ENV = "LLMOPS_ALERT_WEBHOOK_URL"
ALERT_WEBHOOK_BLOCK = "llmops-abuse-webhook"
# How automations.yaml names a block, as prefect.yaml does: {{ prefect.blocks.<type>.<name> }}
BLOCK_REFERENCE = re.compile(r"^\{\{\s*prefect\.blocks\.([\w-]+)\.([\w-]+)\s*\}\}$")
DATABASES = ["prefect", "mlflow"]  # one per server on the team's PostgreSQL
# Flow runs started by our workers send a heartbeat this often (Prefect's minimum), which the
# requeue automation (deployments/automations.yaml) watches for lost workers.
HEARTBEAT_SECONDS = "30"


class StackError(RuntimeError):
    """A stack component could not start or register; the message says which and where to look."""


@dataclass
class StackState:
    """What `up` started: ports, the deployments' profile, the team settings, and each process
    by name."""

    prefect_port: int = 4200
    mlflow_port: int = 5000
    profile: str | None = None
    processes: dict[str, dict] = field(default_factory=dict)
    team: bool = False
    bind: str = HOST  # where the servers listen (0.0.0.0 for a team across machines)
    database_url: str | None = None  # a PostgreSQL server of the team's; None: our own cluster
    postgres_port: int = 5433
    store: str | None = None  # $LLMOPS_STORE when `up` ran: where artifacts and results go
    workers: bool = True

    def cluster(self) -> postgres.Cluster:
        """The stack's own PostgreSQL cluster."""
        return postgres.Cluster(postgres.data_dir_for(project_home()), HOST, self.postgres_port)

    def database(self, name: str, driver: str) -> str:
        """A database's URL on the team's server or the stack's own cluster."""
        if self.database_url:
            server = self.database_url.rstrip("/").split("://", 1)[1]
            return f"{driver}://{server}/{name}"
        return self.cluster().url(name, driver)

    def names(self) -> list[str]:
        """The processes this stack runs, in start order."""
        servers = [s for s in SERVERS if s != "postgres" or (self.team and not self.database_url)]
        return servers + (list(WORKERS) if self.workers else [])

    @property
    def prefect_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    def port(self, name: str) -> int | None:
        """The port a server listens on (workers have none)."""
        ports = {
            "postgres": self.postgres_port,
            "prefect-server": self.prefect_port,
            "mlflow-server": self.mlflow_port,
        }
        return ports.get(name)

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
    pull step), the server's API, and the PREFECT_HOME of ephemeral runs: on a laptop one
    database, so the UI also shows the runs made before `up` (`make demo`), and one result
    store, so the gpu worker's fine-tune result reaches the pipeline on the cpu worker. The
    team stack tracks to the MLflow server (artifacts proxied into the store) instead."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(project_home() / "prefect"),
        "PREFECT_API_URL": f"{state.prefect_url}/api",
        "LLMOPS_HOME": str(project_home()),
        "LLMOPS_PROJECT_DIR": str(REPO),
        "MLFLOW_TRACKING_URI": state.mlflow_url if state.team else mlflow_tracking_uri(),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": HEARTBEAT_SECONDS,
    }
    if state.store:
        env[STORE_ENV] = state.store
    return env


def process_environment(name: str, state: StackState, env: dict[str, str]) -> dict[str, str]:
    """What one process adds to the stack environment: the team servers' databases, and the
    S3 endpoint for MLflow's artifact proxy (boto3 there reads MLFLOW_S3_ENDPOINT_URL)."""
    if name == "prefect-server" and state.team:
        database = state.database("prefect", "postgresql+asyncpg")
        return {**env, "PREFECT_API_DATABASE_CONNECTION_URL": database}
    if name == "mlflow-server" and env.get("AWS_ENDPOINT_URL"):
        return {**env, "MLFLOW_S3_ENDPOINT_URL": env["AWS_ENDPOINT_URL"]}
    return env


def running_stack() -> StackState | None:
    """The stack a still-running `llmops up` started in this project home, if any."""
    state = load_state()
    server = state.processes.get("prefect-server") if state else None
    return state if server and is_running(server) else None


def client_defaults() -> dict[str, str]:
    """What commands run in this project home use while its stack runs: its Prefect server
    (the UI shows their runs), and on a team stack its MLflow server and store."""
    state = running_stack()
    if state is None:
        return {}
    defaults = {"PREFECT_API_URL": f"{state.prefect_url}/api"}
    if state.team:
        defaults["MLFLOW_TRACKING_URI"] = state.mlflow_url
    if state.store:
        defaults[STORE_ENV] = state.store
    return defaults


def commands(state: StackState) -> dict[str, list[str]]:
    """The command line of each stack process, by name."""
    bin_dir = Path(sys.executable).parent
    prefect, mlflow = str(bin_dir / "prefect"), str(bin_dir / "mlflow")
    listen = ["--host", state.bind, "--port"]
    servers = {
        "postgres": postgres.server_command(state.cluster(), state.bind),
        "prefect-server": [prefect, "server", "start", *listen, str(state.prefect_port)],
        "mlflow-server": [
            mlflow,
            "server",
            *listen,
            str(state.mlflow_port),
            "--workers",
            "1",
            *mlflow_stores(state),
        ],
    }
    return {**servers, **{f"worker-{pool}": worker_command(pool) for pool in POOLS}}


def worker_command(pool: str, name: str | None = None) -> list[str]:
    """`prefect worker start` for one pool; named after the pool (and the host, on a team)."""
    prefect = str(Path(sys.executable).parent / "prefect")
    return [prefect, "worker", "start", "--pool", pool, "--name", name or f"llmops-{pool}"]


def mlflow_stores(state: StackState) -> list[str]:
    """Where the MLflow server keeps runs and artifacts: on a team, PostgreSQL and the store
    (served through the tracking server, so clients need only its URL); on a laptop, the
    project home's SQLite and folder, which commands outside the stack use directly."""
    if not state.team:
        artifacts = (project_home() / "mlartifacts").as_uri()
        return ["--backend-store-uri", mlflow_tracking_uri(), "--default-artifact-root", artifacts]
    return [
        "--backend-store-uri",
        state.database("mlflow", "postgresql+psycopg"),
        "--artifacts-destination",
        join(store_root(state.store), "mlflow"),
        "--serve-artifacts",
    ]


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


def start_process(name: str, argv: list[str], env: dict[str, str], user: str | None = None) -> dict:
    """Start `argv` detached from this terminal (it outlives `llmops up`), logging to a file,
    as `user` when given (PostgreSQL refuses to run as root)."""
    log_path(name).parent.mkdir(parents=True, exist_ok=True)
    with log_path(name).open("ab") as log:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd="/" if user else REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
        )
    return {"pid": process.pid, "create_time": psutil.Process(process.pid).create_time()}


def is_ready(name: str, state: StackState) -> bool:
    """A server answers its health check; a worker has sent its pool a heartbeat since it
    started (a stale record of an earlier worker with the same name does not count)."""
    if name == "postgres":
        return postgres.is_ready(state.cluster())
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
    """Create or update the work pools (infra/pools.sh), every deployment and automation
    (upserts), and, with a store configured, the store as Prefect's result storage."""
    prefect = str(Path(sys.executable).parent / "prefect")
    run_step("work pools", ["bash", str(REPO / "infra" / "pools.sh")], {**env, "PREFECT": prefect})
    report(f"work pools {', '.join(POOLS)} registered (infra/pools.sh)")
    spec = deployment_file(state.profile, env)
    run_step(
        "deploy", [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(spec)], env
    )
    report(f"deployments registered from {spec.name} (profile: {state.profile or 'their own'})")
    # The Prefect client reads its API URL from settings; point it at this stack's server.
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: f"{state.prefect_url}/api"}):
        if webhook_url := env.get(ALERT_WEBHOOK_ENV):
            save_alert_webhook(webhook_url)
            report(f"notification block {ALERT_WEBHOOK_BLOCK} saved (${ALERT_WEBHOOK_ENV})")
        names, skipped = apply_automations()
        report(f"automations registered: {', '.join(names)} ({AUTOMATIONS.name})")
        for line in skipped:
            report(line)
        if state.store:
            set_result_storage(state.store)
            report(f"Prefect results kept in the store: {state.store}/prefect-results")


def apply_automations() -> tuple[list[str], list[str]]:
    """Create or replace each automation of deployments/automations.yaml, by name; return the
    names registered and a line for each skipped because a block it names does not exist."""
    from prefect.automations import Automation

    names, skipped = [], []
    for spec in yaml.safe_load(AUTOMATIONS.read_text())["automations"]:
        try:
            resolved = resolve_blocks(spec)
        except LookupError as missing:
            skipped.append(f"automation {spec['name']} skipped: {missing}")
            continue
        with suppress(ValueError):  # Automation.read raises ValueError when none has the name
            Automation.read(name=spec["name"]).delete()
        Automation.model_validate(resolved).create()
        names.append(spec["name"])
    return names, skipped


def resolve_blocks(spec: dict) -> dict:
    """The automation with each action's block reference replaced by the block document's id
    (the action schema takes an id, which differs per server); LookupError when one is missing."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    actions = []
    for action in spec["actions"]:
        reference = BLOCK_REFERENCE.match(str(action.get("block_document_id", "")))
        if reference:
            block_type, name = reference.groups()
            try:
                with get_client(sync_client=True) as client:
                    block = client.read_block_document_by_name(name, block_type)
            except ObjectNotFound:
                hint = f"; set {ALERT_WEBHOOK_ENV} and run `llmops up` again"
                raise LookupError(
                    f"no {block_type} block named {name}"
                    + (hint if name == ALERT_WEBHOOK_BLOCK else "")
                ) from None
            action = {**action, "block_document_id": str(block.id)}
        actions.append(action)
    return {**spec, "actions": actions}


def save_alert_webhook(url: str) -> None:
    """Save the abuse alert's notification block: a JSON POST of the subject and body to `url`."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(
        name=ALERT_WEBHOOK_BLOCK, url=url, json_data={"subject": "{{subject}}", "text": "{{body}}"}
    ).save(ALERT_WEBHOOK_BLOCK, overwrite=True)


def set_result_storage(store_url: str) -> None:
    """Make the store the server's default result storage: every flow run on any host then
    persists its result there (a fine-tune on the gpu host returns its TrainedAdapter to the
    pipeline on the cpu host through it)."""
    from prefect.client.orchestration import get_client
    from prefect.filesystems import RemoteFileSystem

    block_id = RemoteFileSystem(basepath=join(store_url, "prefect-results")).save(
        RESULT_STORAGE_BLOCK, overwrite=True
    )
    with get_client(sync_client=True) as client:
        client.update_server_default_result_storage(block_id)


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
    user = None
    if name == "postgres":
        postgres.initialize(state.cluster())
        user = postgres.server_user()
    argv, env = commands(state)[name], process_environment(name, state, env)
    state.processes[name] = start_process(name, argv, env, user)
    save_state(state)
    wait_until_ready(name, state)
    report(f"{name} ready in {time.monotonic() - started:.1f} s (log: {log_path(name)})")


def up(requested: StackState, report: Callable[[str], None] = print) -> StackState:
    """Start what is not running, register pools, deployments and automations, return the
    stack."""
    recorded = load_state()
    if recorded and recorded.running():
        # The stack is (partly) up: keep its ports, so a second `up` never starts a second one.
        state = recorded
        state.profile = requested.profile
    else:
        state = requested
    env = stack_environment(state)
    servers = [name for name in state.names() if name in SERVERS]
    for name in servers:
        if name == "prefect-server" and state.team:  # after our own cluster, if any, is up
            postgres.ensure_databases(state.database("postgres", "postgresql"), DATABASES)
        ensure_started(name, state, env, report)
    register(state, env, report)
    for name in state.names():
        if name in WORKERS:
            ensure_started(name, state, env, report)
    save_state(state)
    return state


def stop_process(entry: dict, stop_signal: int = signal.SIGTERM) -> None:
    """Stop a recorded process and everything it spawned (server children, flow runs)."""
    try:
        root = psutil.Process(entry["pid"])
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with suppress(psutil.NoSuchProcess):  # exited between listing and signalling
            process.send_signal(stop_signal)
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
            # SIGINT is PostgreSQL's fast shutdown; its SIGTERM waits for every client to leave.
            stop_process(entry, signal.SIGINT if name == "postgres" else signal.SIGTERM)
            stopped.append(name)
            report(f"{name} stopped (pid {entry['pid']})")
    state_file().unlink()
    return stopped
