"""A PostgreSQL cluster of the stack's own, for `llmops up --team` when no database URL is given.

The Prefect server and MLflow tracking each get a database in it. It runs from the machine's
PostgreSQL binaries (Debian's postgresql package: /usr/lib/postgresql/<version>/bin). The server
refuses to run as root, so as root it runs as the `postgres` user, with its data in a folder
that user can reach (a project home under /root is not).

Hand-written rather than a library: starting a cluster is three commands (initdb, postgres,
CREATE DATABASE), and the stack must own the server process to stop exactly it.
"""

import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

SUPERUSER = "postgres"


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL binaries here: install Debian's postgresql package or give a database URL."""


@dataclass(frozen=True)
class Cluster:
    """Where the cluster keeps its data and listens."""

    data_dir: Path
    host: str
    port: int

    def url(self, database: str, driver: str = "postgresql") -> str:
        """A SQLAlchemy URL of one database, e.g. driver `postgresql+asyncpg` for Prefect."""
        return f"{driver}://{SUPERUSER}@{self.host}:{self.port}/{database}"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (initdb is not on PATH on Debian)."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if installed:
        return installed[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailableError(
        "no PostgreSQL server here (initdb not found): `apt-get install postgresql`, or pass "
        "--database-url postgresql://... of an existing server"
    )


def data_dir_for(home: Path) -> Path:
    """The cluster's data folder: in the project home, or, as root, in a folder the postgres
    user can reach (one per project home)."""
    if os.geteuid() != 0:
        return home / "stack" / "postgres"
    key = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Path("/var/tmp/llmops-postgres") / key


def _run_as() -> str | None:
    """The user the server runs as: `postgres` when we are root, else ourselves."""
    return SUPERUSER if os.geteuid() == 0 else None


def initialize(cluster: Cluster) -> None:
    """Create the cluster's data folder with trust authentication (loopback or a private
    network only), once."""
    if (cluster.data_dir / "PG_VERSION").exists():
        return
    cluster.data_dir.mkdir(parents=True, exist_ok=True)
    user = _run_as()
    if user:
        entry = pwd.getpwnam(user)
        for folder in (cluster.data_dir, *cluster.data_dir.parents):
            if folder == Path("/var/tmp"):
                break
            os.chown(folder, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [str(bin_dir() / "initdb"), "-D", str(cluster.data_dir), "-A", "trust", "-U", SUPERUSER],
        user=user,
        check=True,
        capture_output=True,
    )


def server_command(cluster: Cluster, listen: str) -> list[str]:
    """The `postgres` command line: listening on `listen`, its socket in the data folder."""
    return [
        str(bin_dir() / "postgres"),
        "-D",
        str(cluster.data_dir),
        "-p",
        str(cluster.port),
        "-k",
        str(cluster.data_dir),
        "-c",
        f"listen_addresses={listen}",
    ]


def server_user() -> str | None:
    """Who runs the server process (passed to Popen's `user`)."""
    return _run_as()


def is_ready(cluster: Cluster) -> bool:
    """The server accepts connections."""
    try:
        with psycopg.connect(cluster.url("postgres"), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def ensure_databases(admin_url: str, names: list[str]) -> None:
    """Create the databases that do not exist yet (CREATE DATABASE cannot say IF NOT EXISTS)."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                connection.execute(f'CREATE DATABASE "{name}"')
