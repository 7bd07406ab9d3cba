"""A throwaway PostgreSQL server for demos, tests and benchmarks: ``with LocalPostgres() as pg: pg.url``.

Runs Debian's ``initdb`` + ``pg_ctl`` (package ``postgresql``; binaries under
``/usr/lib/postgresql/<major>/bin``) on a free loopback port, with its data and socket in a temporary
folder and trust authentication. PostgreSQL refuses to run as root: as root the server runs as the
``postgres`` user (created by the Debian package) through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sdk.errors import TelemetryError
from sdk.fleet.broker import free_port


def pg_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest installed major version)."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise TelemetryError("PostgreSQL is not installed: apt-get install -y postgresql")
    return Path(found[-1]).parent


class LocalPostgres:
    """A PostgreSQL server on ``127.0.0.1:port`` with database ``postgres``, user ``postgres``, no password.

    ``fsync=False`` (the default, for tests) trades durability for speed; benchmarks pass ``fsync=True``
    to measure what a real server does."""

    def __init__(self, port: int | None = None, workdir: str | os.PathLike[str] | None = None,
                 fsync: bool = False) -> None:
        self.bin = pg_bindir()
        self.fsync = fsync
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="ember-postgres-"))
        self.data = self.dir / "data"
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60.0) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise TelemetryError(f"PostgreSQL {argv[0]} failed (code {proc.returncode}): "
                                 f"{(proc.stderr or proc.stdout).strip()[-400:]}")

    def start(self, timeout: float = 30.0) -> LocalPostgres:
        """initdb (first time only) and start the server; wait until it accepts connections."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'}"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w",
                  "-t", str(int(timeout)), "start", timeout=timeout + 10)
        self.running = True
        return self

    def log_text(self) -> str:
        p = self.dir / "log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        if self.running:
            with contextlib.suppress(TelemetryError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=30)
            self.running = False
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:  # noqa: PYI034
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(url: str, timeout: float = 10.0) -> None:
    """Wait until ``url`` accepts a connection (psycopg 3)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError as e:
            if time.monotonic() > deadline:
                raise TelemetryError(f"PostgreSQL at {url} is not reachable: {e}") from None
            time.sleep(0.1)
