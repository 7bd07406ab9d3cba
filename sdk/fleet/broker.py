"""A local mosquitto for demos, tests and benchmarks: ``with LocalBroker() as b: b.url``.

Runs ``mosquitto -c FILE`` with a loopback listener on a free port and everything in a temporary
folder (config, persistence, log); no system service is involved.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from sdk.errors import TelemetryError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalBroker:
    """A mosquitto process on ``127.0.0.1:port``.

    ``extra`` is appended to the listener block (TLS, password file, ACL ...); ``persistence``
    keeps sessions and queued QoS 1 messages across ``kill()``/``start()`` (SIGKILL and restart).
    """

    def __init__(self, port: int | None = None, extra: str = "", persistence: bool = False,
                 workdir: str | os.PathLike[str] | None = None, allow_anonymous: bool = True) -> None:
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if exe is None:
            raise TelemetryError("mosquitto is not installed: apt-get install -y mosquitto")
        self.exe = exe
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="ember-mosquitto-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'true' if allow_anonymous else 'false'}",
                 f"persistence {'true' if persistence else 'false'}",
                 f"persistence_location {self.dir}/", "autosave_interval 1", "log_dest stderr",
                 "log_type error", "log_type warning", "max_queued_messages 100000", extra]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            lines.insert(0, "user root")  # else mosquitto drops to user 'mosquitto', who cannot read our temp files
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 5.0) -> LocalBroker:
        """Start mosquitto and wait until it accepts connections; on failure nothing is left running."""
        self.log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115 - closed by kill()/stop()
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.kill()
                raise TelemetryError(f"mosquitto exited at start (code {code}); "
                                     f"see {self.dir / 'mosquitto.log'}: {self.log_text()[-400:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.01)
        self.kill()
        raise TelemetryError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def log_text(self) -> str:
        p = self.dir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown, as in a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None
        self._close_log()

    def _close_log(self) -> None:
        log, self.log = self.log, None
        if log is not None:
            log.close()

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self._close_log()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:  # noqa: PYI034
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
