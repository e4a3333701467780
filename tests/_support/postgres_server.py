"""A private PostgreSQL cluster on a free loopback port in a temp dir, for the Postgres tests.

Never the machine's shared server on 5432: each cluster is ours, made by ``initdb`` here,
started and stopped with ``pg_ctl`` here. Run as root, the server runs as the ``postgres``
OS user (``runuser``), in a temp dir that user owns. A missing server binary is an error
that says what to install, never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests._support.redis_server import free_port

__all__ = ["MISSING", "PostgresServer", "find_binary"]

MISSING = "install PostgreSQL's server: apt-get install postgresql; .ci/run does this"


def find_binary(name: str) -> str:
    """``initdb``/``pg_ctl``/``pgbench``: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        found = candidates[-1] if candidates else None
    if found is None:
        raise RuntimeError(f"{name} is not on PATH nor in /usr/lib/postgresql/*/bin; {MISSING}")
    return found


class PostgresServer:
    """``start()``, ``stop(mode)`` (``"immediate"``: a crash, no checkpoint), ``restart()``.

    ``durable=False`` (the session cluster) turns fsync off: a crash of the server process
    (``stop("immediate")``) still loses nothing committed, as the kernel has the WAL; only a
    crash of the machine could. The crash test's cluster keeps the defaults.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.initdb = find_binary("initdb")
        self.pg_ctl = find_binary("pg_ctl")
        self.durable = durable
        self.port = free_port()
        self._as: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="qg-pg-"))
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.running = False
        self._run(
            [
                self.initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        )

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list[str], timeout: float = 60) -> None:
        done = subprocess.run(
            self._as + argv, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} failed: {(done.stderr or done.stdout)[-800:]}"
            )

    def start(self) -> PostgresServer:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=200",
            "-c shared_buffers=64MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self._run(
            [
                self.pg_ctl,
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-o",
                " ".join(options),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if not self.running:
            return
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])
        self.running = False

    def restart(self) -> PostgresServer:
        self.stop()
        return self.start()

    def __enter__(self) -> PostgresServer:
        for attempt in range(3):
            try:
                return self.start()
            except RuntimeError:
                if attempt == 2:
                    self.close()
                    raise
                self.port = free_port()  # someone took the port between bind and start
        raise AssertionError("unreachable")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.close()
