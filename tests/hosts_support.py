"""Test hosts that share no disk and, where the machine allows it, no network stack.

With `ip netns` (root on Linux), each host is a network namespace joined to the control host by
its own veth pair, and to this test process by another; without it, every host is a set of
processes on loopback. Either way each host has its own project home, working directory and
HOME under its own folder, which `wipe` deletes: nothing one host wrote is on another's disk
except through the servers and the object store.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# Settings the test session itself uses, which must not leak into a host's environment.
SESSION_PREFIXES = ("PREFECT_", "MLFLOW_", "LLMOPS_", "AWS_")
SUBNET = "10.213"  # 10.213.<link>.1 is the control side, .2 the other end


def can_use_namespaces() -> bool:
    """Whether this process may create network namespaces (root with iproute2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"llmops-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return made


@dataclass
class Host:
    """One machine of the test: its folders, its namespace (if any) and its processes."""

    name: str
    root: Path
    netns: str | None
    control_address: str  # how this host reaches the control host
    address: str  # how the test process reaches this host
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "llmops-home"

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    def environment(self, **extra: str) -> dict[str, str]:
        """The host's own environment: its home, working directory and HOME, plus `extra`."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(SESSION_PREFIXES)}
        for folder in (self.home, self.workdir, self.root / "user"):
            folder.mkdir(parents=True, exist_ok=True)
        return {
            **base,
            "LLMOPS_HOME": str(self.home),
            "HOME": str(self.root / "user"),
            "PREFECT_HOME": str(self.home / "prefect"),
            **extra,
        }

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start a long-running process on this host, logging to <root>/<name>.log."""
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen(
            self.command(argv),
            env=env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 600):
        """Run a command on this host to completion."""
        return subprocess.run(
            self.command(argv),
            env=env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill(self) -> None:
        """kill -9 every process of the host, as a machine that loses power."""
        victims = set(_descendants(self.processes))
        if self.netns:
            victims |= _namespace_pids(self.netns)
        _sigkill(victims)
        for process in self.processes:
            process.wait(timeout=30)
        self.processes.clear()

    def wipe(self) -> None:
        """Delete everything the host had on disk."""
        shutil.rmtree(self.root, ignore_errors=True)


def _descendants(processes: Iterable[subprocess.Popen]) -> list[int]:
    pids = []
    for process in processes:
        try:
            parent = psutil.Process(process.pid)
            pids += [parent.pid, *(child.pid for child in parent.children(recursive=True))]
        except psutil.NoSuchProcess:
            continue
    return pids


class Network:
    """The control host and the hosts joined to it."""

    def __init__(self, root: Path, use_namespaces: bool) -> None:
        self.root = root
        self.tag = f"{os.getpid() % 10000}"
        self.use_namespaces = use_namespaces
        self.links = 0
        self.namespaces: list[str] = []
        self.control = self._host("control", control_address="127.0.0.1")

    def _namespace(self, name: str) -> str:
        netns = f"llmops-{name}-{self.tag}"
        _ip("netns", "add", netns)
        self.namespaces.append(netns)
        _ip("netns", "exec", netns, "ip", "link", "set", "lo", "up")
        return netns

    def _link(self, left: str | None, right: str) -> tuple[str, str]:
        """A veth pair from `left` (None: this test process) to `right`; returns the left and
        right addresses."""
        self.links = _next_free_link(self.links)
        a, b = f"ve{self.tag}a{self.links}", f"ve{self.tag}b{self.links}"
        left_ip, right_ip = f"{SUBNET}.{self.links}.1", f"{SUBNET}.{self.links}.2"
        _ip("link", "add", a, "type", "veth", "peer", "name", b)
        for end, netns, ip in ((a, left, left_ip), (b, right, right_ip)):
            if netns:
                _ip("link", "set", end, "netns", netns)
            prefix = ["netns", "exec", netns, "ip"] if netns else []
            _ip(*prefix, "addr", "add", f"{ip}/24", "dev", end)
            _ip(*prefix, "link", "set", end, "up")
        return left_ip, right_ip

    def _host(self, name: str, control_address: str) -> Host:
        root = self.root / name
        root.mkdir(parents=True, exist_ok=True)
        if not self.use_namespaces:
            return Host(name, root, None, "127.0.0.1", "127.0.0.1")
        netns = self._namespace(name)
        _, reachable_at = self._link(None, netns)
        return Host(name, root, netns, control_address, reachable_at)

    def add_host(self, name: str) -> Host:
        """A host joined to the control host (and reachable from this test process)."""
        if not self.use_namespaces:
            return self._host(name, "127.0.0.1")
        host = self._host(name, "")
        control_side, _ = self._link(self.control.netns, host.netns)
        host.control_address = control_side
        return host

    def close(self) -> None:
        for netns in self.namespaces:
            _sigkill(_namespace_pids(netns))
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def _next_free_link(after: int) -> int:
    """The next link number whose subnet no interface here uses: namespaces left behind by a
    killed run (or a run beside this one) keep their addresses, and a clash routes our traffic
    to their dead ends."""
    listed = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    taken = {int(n) for n in re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)\.", listed.stdout)}
    link = after + 1
    while link in taken:
        link += 1
    return link


def _namespace_pids(netns: str) -> set[int]:
    listed = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return {int(pid) for pid in listed.stdout.split()}


def _sigkill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(pid, signal.SIGKILL)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
