"""Scratch PostgreSQL and Redis for the production-shaped bench, and Open WebUI replicas sharing them.

PostgreSQL is Debian's `postgresql` package: a throw-away cluster made with
initdb in a temp dir, run by pg_ctl as the `postgres` user (initdb refuses
root) on a free loopback port. Redis is `redis-server` on a free port, no
persistence. Both are stopped and their directories removed when the bench ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.openwebui import OpenWebUI
from tests.support.ports import free_port, wait_for_port


def postgres_bin() -> Path:
    """Debian keeps each PostgreSQL version's tools in /usr/lib/postgresql/<version>/bin, off the PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found is None:
        raise RuntimeError("PostgreSQL is not installed (make bench installs Debian's postgresql)")
    return Path(found).parent


def _as_postgres(command: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root (initdb and postgres refuse root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class ScratchPostgres:
    """A PostgreSQL cluster of its own; `url` is a DATABASE_URL for Open WebUI."""

    def __init__(self) -> None:
        binaries = postgres_bin()
        self.initdb, self.pg_ctl = str(binaries / "initdb"), str(binaries / "pg_ctl")
        self.dir = Path(tempfile.mkdtemp(prefix="r1relay-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        # psycopg 3 (in Open WebUI's environment) for both of its engines; plain postgresql:// would want psycopg2
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._started = False

    def start(self) -> ScratchPostgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres([self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} -c max_connections=400 -c fsync=off"
        subprocess.run(_as_postgres([self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start"]),
                       check=True, capture_output=True, timeout=120)
        self._started = True
        wait_for_port(self.port, 30)
        return self

    def stop(self) -> None:
        if self._started:
            subprocess.run(_as_postgres([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


class ScratchRedis:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="r1relay-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ScratchRedis:
        binary = shutil.which("redis-server") or "redis-server"
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 30)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Replica(OpenWebUI):
    """A further Open WebUI on the same database: signs in as the first replica's admin instead of signing up."""

    def __init__(self, first: OpenWebUI, data_dir: Path, env: dict[str, str]) -> None:
        super().__init__(data_dir, env=env)
        self.secret_key = first.secret_key  # tokens made by one replica must hold on the other
        self.admin_email, self.admin_password = first.admin_email, first.admin_password

    def _signup_admin(self) -> str:
        return self.sign_in(self.admin_email, self.admin_password)
