"""Stopping an `llmops` command with SIGTERM or Ctrl-C leaves no process behind.

The commands run as a user runs them (the installed `llmops` executable, no Prefect server
configured), so each starts Prefect's temporary server, the child that used to be orphaned.
What a command started is found two ways: its process tree just before the signal, and every
process on the machine whose environment names the command's project home.
"""

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from net_support import free_port
from serving_support import LLMOPS, home_with_talking_champion, serve_answers
from stack_support import wait_for

MODEL = "shutdown-test-assistant"
SESSION_PREFIXES = ("PREFECT_", "MLFLOW_", "LLMOPS_")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def serve_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project home whose registry has a champion that answers."""
    return home_with_talking_champion(tmp_path_factory.mktemp("shutdown-serve"), MODEL)


def _environment(home: Path) -> dict[str, str]:
    """A user's shell: no Prefect server configured, the project home given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SESSION_PREFIXES)}
    return {
        **env,
        "LLMOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }


def _start(args: list[str], home: Path) -> tuple[subprocess.Popen, Path]:
    log = home / f"{args[0]}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(LLMOPS), *args], env=_environment(home), stdout=out, stderr=subprocess.STDOUT
        )
    return process, log


def _tree(process: subprocess.Popen) -> list[psutil.Process]:
    """The process and everything it started that is running now."""
    parent = psutil.Process(process.pid)
    return [parent, *parent.children(recursive=True)]


def _prefect_servers(tree: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in tree if "prefect.server.api.server:create_app" in " ".join(p.cmdline())]


def _left_behind(tree: list[psutil.Process], home: Path) -> list[str]:
    """Processes from `tree`, or holding `home` in their environment, still running."""
    left = {p.pid: p for p in tree if _still_running(p)}
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get("LLMOPS_HOME") == str(home):
                left[p.pid] = p
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return [f"{p.pid}: {' '.join(_cmdline(p))[:160]}" for p in left.values()]


def _still_running(process: psutil.Process) -> bool:
    # is_running() also checks the creation time, so a reused pid does not count.
    return process.is_running() and process.status() != psutil.STATUS_ZOMBIE


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:
        return ["(gone)"]


def _stop(process: subprocess.Popen, log: Path, stop_signal: int) -> None:
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired as timeout:
        process.kill()
        tail = log.read_text()[-3000:]
        raise AssertionError(f"still running 90 s after {stop_signal!r}:\n{tail}") from timeout


def _start_serve(home: Path) -> tuple[subprocess.Popen, Path, str]:
    """`llmops serve` on a free port, once it answers."""
    port = free_port()
    process, log = _start(
        ["serve", "--profile", "tiny", "--no-api-key", "--port", str(port)]
        + ["--registered-model", MODEL],
        home,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for("llmops serve to answer", lambda: serve_answers(base_url, process, log), 180, 0.5)
    except BaseException:
        process.kill()
        raise
    return process, log, base_url


@pytest.fixture
def served(serve_home: Path) -> Iterator[tuple[subprocess.Popen, Path, str]]:
    process, log, base_url = _start_serve(serve_home)
    try:
        yield process, log, base_url
    finally:
        if process.poll() is None:
            process.kill()


def _held_chat(base_url: str, release: threading.Event, n: int) -> httpx.Response:
    """A chat request whose body arrives only after `release`: the server has the request (its
    headers) in hand when the signal comes, and must still answer it."""
    body = json.dumps(
        {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": f"Hi {n}"}]}
    ).encode()

    def parts() -> Iterator[bytes]:
        yield body[:10]
        release.wait(60)
        yield body[10:]

    headers = {"content-type": "application/json", "content-length": str(len(body))}
    url = f"{base_url}/v1/chat/completions"
    return httpx.post(url, content=parts(), headers=headers, timeout=120)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_drains_requests_and_leaves_nothing(
    served: tuple[subprocess.Popen, Path, str], serve_home: Path, stop_signal: int
) -> None:
    process, log, base_url = served
    tree = _tree(process)
    assert _prefect_servers(tree), "expected serve to start Prefect's temporary server"
    release = threading.Event()
    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(_held_chat, base_url, release, n) for n in range(8)]
        time.sleep(1.0)  # every request's headers are in
        process.send_signal(stop_signal)
        wait_for("serve to stop taking connections", lambda: not _accepts(base_url), 30, 0.2)
        release.set()
        statuses = [answer.result().status_code for answer in answers]
    assert statuses == [200] * 8, log.read_text()[-3000:]
    assert answers[0].result().json()["choices"][0]["message"]["content"] is not None
    _stop(process, log, stop_signal)
    assert _left_behind(tree, serve_home) == []


def _accepts(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/health", timeout=2)
    except httpx.TransportError:
        return False
    return True


def test_repeated_sigterm_cycles_leave_nothing(serve_home: Path) -> None:
    """Start and SIGTERM `llmops serve` again and again (3 here; LLMOPS_SHUTDOWN_CYCLES=10 for
    the issue's check)."""
    cycles = int(os.environ.get("LLMOPS_SHUTDOWN_CYCLES", "3"))
    for cycle in range(cycles):
        process, log, _ = _start_serve(serve_home)
        tree = _tree(process)
        _stop(process, log, signal.SIGTERM)
        assert _left_behind(tree, serve_home) == [], f"cycle {cycle + 1}"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_main_job_stopped_mid_training_leaves_nothing(tmp_path: Path, stop_signal: int) -> None:
    process, log = _start(["run", "--profile", "tiny"], tmp_path)
    try:
        wait_for("training to start", lambda: _training(process, log), 300, 0.5)
        tree = _tree(process)
        assert _prefect_servers(tree), "expected the run to start Prefect's temporary server"
        _stop(process, log, stop_signal)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Stopping temporary server" in log.read_text()
    assert _left_behind(tree, tmp_path) == []


def _training(process: subprocess.Popen, log: Path) -> bool:
    text = log.read_text()
    if process.poll() is not None:
        raise AssertionError(f"llmops run exited before training:\n{text[-3000:]}")
    return "Task run 'start_training_run" in text
