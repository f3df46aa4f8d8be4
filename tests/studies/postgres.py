"""A throwaway PostgreSQL server on loopback for the multi-worker study tests.

Uses E2GAN_TEST_POSTGRES_URL when set; otherwise starts a private server from the installed
binaries (initdb refuses to run as root, so it runs as the 'postgres' user when we are root).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self):
        # Not under pytest's tmp_path: that sits in a root-only folder the 'postgres' user cannot enter.
        self.root, self.port = Path(tempfile.mkdtemp(prefix="e2gan-pg-")), _free_port()
        self.data = self.root / "pgdata"
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://e2gan@127.0.0.1:{self.port}/postgres"

    def start(self) -> "PostgresServer":
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if self._as_user:
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o755)
        subprocess.run([*self._as_user, initdb, "-D", str(self.data), "-U", "e2gan", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True)
        subprocess.run([*self._as_user, pg_ctl, "-D", str(self.data), "-o", self._opts, "-l", str(self.root / "log"),
                        "-w", "start"], check=True, capture_output=True)
        return self

    @property
    def _opts(self) -> str:
        return f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=60"

    def restart(self, down_s: float = 0.0) -> None:
        """Stop (fast: sessions cut, as an admin's restart does), stay down ``down_s`` seconds, start
        again; returns once it accepts connections."""
        pg_ctl = find_bin("pg_ctl")
        subprocess.run([*self._as_user, pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"], check=True,
                       capture_output=True)
        time.sleep(down_s)
        subprocess.run([*self._as_user, pg_ctl, "-D", str(self.data), "-o", self._opts, "-l", str(self.root / "log"),
                        "-w", "start"], check=True, capture_output=True)

    def connections(self, database: str = "postgres") -> int:
        """Client connections to ``database`` now (pg_stat_activity), this query's own excluded."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as con:
                return con.execute(sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
                    {"db": database}).scalar()
        finally:
            engine.dispose()

    def stop(self) -> None:
        subprocess.run([*self._as_user, find_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def wait_for(predicate, timeout: float, interval: float = 0.5) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False
