"""Running the dashboard with uvicorn: ``serve(...)`` blocks until Ctrl-C; ``DashboardServer`` runs it
in a background thread (``with DashboardServer(...) as s: s.url``) for scripts and tests."""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from sdk.errors import ConfigError
from sdk.fleet.broker import free_port
from sdk.fleet.dashboard.app import make_app
from sdk.fleet.dashboard.deploys import MAX_UPLOAD
from sdk.fleet.dashboard.live import LiveFleet


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str | Path) -> str:
    """The bearer token in ``path`` (its first line), with a clear error when unusable."""
    p = Path(path)
    try:
        token = p.read_text(encoding="utf-8").strip().splitlines()[0].strip() if p.stat().st_size else ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--token-file {p}: cannot read it ({e})") from None
    if len(token) < 16:
        raise ConfigError(f"--token-file {p}: the token must be at least 16 characters "
                          "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE)")
    return token


def check_options(host: str, admin: bool, token: str | None, cert: str | None, key: str | None) -> str | None:
    """Validate the server options; returns the token to use (a fresh one for ``--admin`` on
    loopback without ``--token-file``)."""
    if bool(cert) != bool(key):
        raise ConfigError("HTTPS needs both --cert FILE and --key FILE")
    for flag, f in (("--cert", cert), ("--key", key)):
        if f and not Path(f).is_file():
            raise ConfigError(f"{flag} {f}: no such file")
    if admin and not token:
        if not is_loopback(host):
            raise ConfigError(f"--admin on {host} (not a loopback address) needs --token-file FILE: anyone who "
                              "can reach the port could otherwise send commands to the fleet")
        token = secrets.token_urlsafe(24)
    return token if admin else None


class _Server(uvicorn.Server):
    """uvicorn's server; on Ctrl-C it also ends the event streams, so shutdown does not wait on them."""

    def __init__(self, config: uvicorn.Config, closing: threading.Event) -> None:
        super().__init__(config)
        self.closing = closing

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.closing.set()
        super().handle_exit(sig, frame)


class DashboardServer:
    """uvicorn serving ``make_app(...)`` on ``host:port`` (a free port when ``port`` is 0)."""

    def __init__(self, live: LiveFleet, db: str | None = None, host: str = "127.0.0.1", port: int = 8080,
                 admin: bool = False, token: str | None = None, cert: str | None = None, key: str | None = None,
                 interval_s: float = 0.5, log_level: str = "warning", max_upload: int = MAX_UPLOAD) -> None:
        self.token = check_options(host, admin, token, cert, key)
        self.live, self.host, self.port = live, host, port or free_port()
        self.scheme = "https" if cert else "http"
        loopback = ["127.0.0.1", "localhost", "[::1]"] if is_loopback(host) else None  # no DNS rebinding
        self.app = make_app(live, db=db, admin=admin, token=self.token, interval_s=interval_s, allowed_hosts=loopback,
                            max_upload=max_upload)
        config = uvicorn.Config(self.app, host=host, port=self.port, log_level=log_level, ssl_certfile=cert,
                                ssl_keyfile=key, timeout_graceful_shutdown=2, lifespan="on")
        self.server = _Server(config, self.app.state.dashboard.closing)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/"

    @property
    def admin_url(self) -> str:
        """The page's address with the token in the fragment (never sent to the server or logged)."""
        return f"{self.url}#token={self.token}" if self.token else self.url

    def run(self) -> None:
        """Serve until Ctrl-C (uvicorn handles the signals)."""
        self.live.start()  # connect first: a broker problem is a clear error, not a failed startup
        try:
            self.server.run()
        finally:
            self.app.state.dashboard.closing.set()
            self.live.stop()

    def start(self, timeout: float = 10.0) -> DashboardServer:
        """Serve in a background thread; returns once the port accepts connections."""
        self.live.start()
        self.thread = threading.Thread(target=self.server.run, name="ember-dashboard", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the dashboard did not start on {self.host}:{self.port} (port in use?)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.app.state.dashboard.closing.set()
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
            self.thread = None
        self.live.stop()

    def __enter__(self) -> DashboardServer:  # noqa: PYI034
        return self.start() if self.thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(broker: str, fleet: str, db: str | None = None, host: str = "127.0.0.1", port: int = 8080,
          admin: bool = False, token: str | None = None, cert: str | None = None, key: str | None = None,
          **settings: Any) -> None:
    """Serve the live dashboard of ``fleet`` on ``broker`` until Ctrl-C; ``settings`` are extra
    ``[telemetry]`` keys for the broker connection (``ca_certs``, ``username`` ...)."""
    server = DashboardServer(LiveFleet.connect(broker, fleet, **settings), db=db, host=host, port=port,
                             admin=admin, token=token, cert=cert, key=key)
    mode = "read-only"
    if admin:  # a generated token is shown once, in the URL fragment; a token from a file is never printed
        mode = "admin: actions need the token" + ("" if token else f"; open {server.admin_url}")
    print(f"ember fleet dashboard for fleet {fleet!r} on {server.url} ({mode}); Ctrl-C to stop", flush=True)
    server.run()
