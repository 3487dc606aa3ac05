"""A real, throw-away PostgreSQL server for tests: Debian's ``postgresql`` package, in a temporary folder, on a
loopback port, trusting local connections (no password).

PostgreSQL refuses to run as root, so as root its programs run as the ``postgres`` user (``su postgres -c``),
in a folder given to that user. ``PostgresServer.start()`` makes and starts a cluster; ``stop()`` and ``start()``
again simulate the database going down and coming back; ``destroy()`` stops it and removes the folder.
``new_database()`` gives the URL of a fresh, empty database, so that tests do not see each other's rows.

Example (a session fixture)::

    server = PostgresServer.find()   # None when PostgreSQL is not installed
    server.start()
    url = server.new_database()      # postgresql+psycopg://test@127.0.0.1:PORT/t_...
    server.destroy()
"""

from __future__ import annotations

import glob
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "test"


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster of Debian's package, owned by the test session."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="playground-pg-"))
        self.data = self.folder / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.folder, "postgres")

    @classmethod
    def find(cls) -> PostgresServer | None:
        """A server using the newest installed ``/usr/lib/postgresql/*/bin``, or ``None`` when there is none."""
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
        return cls(Path(found[-1]).parent) if found else None

    @property
    def base_url(self) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        line = " ".join(shlex.quote(a) for a in args)
        command = ["su", "postgres", "-s", "/bin/sh", "-c", line] if self.as_root else ["sh", "-c", line]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            log = (self.folder / "log").read_text(errors="replace")[-2000:] if (self.folder / "log").exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()} {log}")

    def start(self) -> None:
        """Make the cluster (first time) and start it; waits until it accepts connections."""
        if not self.data.exists():
            self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", USER,
                      "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop the server now (clients are disconnected), as a database that goes down."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def new_database(self) -> str:
        """The URL of a new empty database on this server."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"{self.base_url}/{name}"

    def destroy(self) -> None:
        """Stop the server (if running) and delete its folder."""
        try:
            self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
