"""The dashboard's ASGI app (Starlette): the page, its JSON API and a server-sent event stream.

    GET  /                     the page (static/index.html; no CDN, works offline)
    GET  /api/state            the fleet snapshot (devices, drift alerts, events, deployments)
    GET  /api/stream           the same snapshot as server-sent events, sent on every change
    GET  /api/history/{device} plot data from the recording (--db; ?since=EPOCH_S): PSI, latency, tier
    POST /api/command          {"device": "cam1", "cmd": "pin_tier", "tier": "int8"}: admin + token only
    POST /api/deploy?canary=…  the body is a signed bundle: deploy it to the fleet (admin + token only)
    GET  /bundles/{key}/{name} an uploaded bundle, for the devices (the random key is the secret)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sdk.errors import ConfigError, EmberError
from sdk.fleet.dashboard.deploys import MAX_UPLOAD, Deployer, DeployRefused
from sdk.fleet.dashboard.live import LiveFleet, UnknownDevice
from sdk.fleet.record import load_history
from sdk.fleet.report import history_series
from sdk.telemetry.commands import MAX_PAYLOAD, SCHEMA, CommandRejected
from sdk.telemetry.settings import TelemetrySettings
from sdk.util.jsonutil import dumps

STATIC = Path(__file__).with_name("static")
HEADERS = [(b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"cache-control", b"no-store")]
KEEPALIVE_S = 5.0
MAX_BODY = 2 * MAX_PAYLOAD


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status, headers, media_type="application/json")


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


async def _receive(request: Request, path: Path, limit: int) -> int | None:
    """Write the request body to ``path``; its size, or None (and stop reading) past ``limit`` bytes."""
    size = 0
    f = await run_in_threadpool(path.open, "wb")
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            await run_in_threadpool(f.write, chunk)
    finally:
        f.close()
    return size


class _SecurityHeaders:
    """Adds a strict Content-Security-Policy (the page loads only its own files) and friends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


class Dashboard:
    """The endpoints, bound to one ``LiveFleet``."""

    def __init__(self, live: LiveFleet, db: str | None, admin: bool, token: str | None, interval_s: float,
                 max_upload: int = MAX_UPLOAD) -> None:
        if admin and not token:
            raise ConfigError("--admin needs a token: give --token-file FILE (one line, the bearer token)")
        self.live, self.db, self.admin, self.token, self.interval_s = live, db, admin, token, interval_s
        self.deployer = Deployer(live, max_upload) if admin else None
        self.closing = threading.Event()  # set by the server thread on shutdown: ends the streams
        self._cache: tuple[tuple[int, int], str] = ((-1, -1), "")

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def state(self, request: Request) -> Response:
        return Response(self._snapshot_json(), media_type="application/json")

    def _snapshot_json(self) -> str:
        """One snapshot per change (and per second, for the ages), shared by every client."""
        key = (self.live.changes, int(time.monotonic()))
        if self._cache[0] != key:
            self._cache = (key, dumps(self._snapshot()))
        return self._cache[1]

    def _snapshot(self) -> dict[str, Any]:
        snap = self.live.snapshot()
        psi = TelemetrySettings()
        snap.update(admin=self.admin, history=bool(self.db), psi_warn=psi.psi_warn, psi_alert=psi.psi_alert,
                    commands=sorted(SCHEMA) if self.admin else [],
                    deploy_job=self.deployer.status() if self.deployer else None)
        return snap

    async def stream(self, request: Request) -> Response:
        async def events() -> AsyncIterator[str]:
            last, sent = -1, 0.0
            while not self.closing.is_set():
                if self.live.changes != last or time.monotonic() - sent > KEEPALIVE_S:
                    last, sent = self.live.changes, time.monotonic()
                    yield f"data: {self._snapshot_json()}\n\n"
                await asyncio.sleep(self.interval_s)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    async def history(self, request: Request) -> Response:
        device = request.path_params["device"]
        if not self.db:
            return _error("no recording: start 'ember fleet serve' with --db FILE (made by 'ember fleet record')", 404)
        try:
            since = float(request.query_params.get("since", 0)) or None
        except ValueError:
            return _error("since must be a time in epoch seconds", 400)
        try:
            mine = await run_in_threadpool(lambda: load_history(self.db, device=device, since=since,
                                                                fleet=self.live.settings.fleet))
        except EmberError as e:
            return _error(str(e), 503)
        t0 = min((r["ts"] for r in mine if r["ts"]), default=0.0)
        return _json({"device": device, "messages": len(mine), "t0": t0, **history_series(mine, t0)})

    def _refuse(self, request: Request) -> Response | None:
        """403 on a read-only dashboard, 401 without the right bearer token; None when allowed."""
        if not self.admin:
            return _error("read-only dashboard: start 'ember fleet serve' with --admin --token-file FILE to allow "
                          "actions", 403)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), str(self.token).encode()):
            return _error("missing or wrong token: send 'Authorization: Bearer <token from --token-file>'", 401,
                          {"www-authenticate": "Bearer"})
        return None

    async def deploy(self, request: Request) -> Response:
        """The body is the bundle (``application/octet-stream``); options in the query string."""
        refused = self._refuse(request)
        if refused is not None or self.deployer is None:
            return refused or _error("read-only dashboard", 403)
        dep = self.deployer
        if dep.running:
            return _error(f"deployment {dep.job.get('deployment')} is still running; wait for it to finish", 409)
        options = dict(request.query_params)
        key, path = dep.new_file(options.get("name", ""))
        try:
            size = await _receive(request, path, dep.max_upload)
            if size is None:
                return _error(f"the bundle is over {dep.max_upload} bytes (the dashboard's upload limit; "
                              "larger models: ember fleet deploy --url)", 413)
            if not size:
                return _error("no bundle: send the signed bundle (ember models pack) as the request body", 400)
            job = await run_in_threadpool(dep.start, key, path, options, str(request.base_url))
        except DeployRefused as e:
            return _error(str(e), e.status)
        except ConfigError as e:
            return _error(str(e), 400)
        finally:
            if key not in dep.files:
                shutil.rmtree(path.parent, ignore_errors=True)
        return _json({"ok": True, "deployment": job}, 202)

    async def bundle(self, request: Request) -> Response:
        path = self.deployer.bundle(request.path_params["key"], request.path_params["name"]) if self.deployer else None
        if path is None:
            return _error("no such bundle", 404)
        return FileResponse(path, media_type="application/octet-stream")

    async def command(self, request: Request) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                return _error(f"the body is over {MAX_BODY} bytes (a command is at most {MAX_PAYLOAD})", 413)
        try:
            body = json.loads(raw)
        except ValueError:
            return _error("the body must be JSON: {\"device\": \"cam1\", \"cmd\": \"pin_tier\", \"tier\": \"int8\"}",
                          400)
        if not isinstance(body, dict):
            return _error("the body must be a JSON object with \"device\" and \"cmd\"", 400)
        device = body.pop("device", None)
        try:
            sent = await run_in_threadpool(self.live.send_command, device, body)
        except CommandRejected as e:
            return _error(f"command rejected: {e}", 400)
        except UnknownDevice as e:
            return _error(str(e), 404)
        except EmberError as e:
            return _error(str(e), 502)
        return _json({"ok": True, "sent": sent})


def make_app(live: LiveFleet | str, fleet: str = "default", db: str | None = None, admin: bool = False,
             token: str | None = None, interval_s: float = 0.5, allowed_hosts: list[str] | None = None,
             max_upload: int = MAX_UPLOAD) -> Starlette:
    """The dashboard as an ASGI app for any ASGI server (``uvicorn.run(make_app(...))``).

    ``live`` is a ``LiveFleet`` or a broker URL (then ``fleet`` names the fleet); it is started with
    the app if it is not running yet, and stopped with it in that case. ``db`` is a recording for the
    history plots; ``admin`` with ``token`` allows ``POST /api/command`` and ``POST /api/deploy`` (bundles
    up to ``max_upload`` bytes). ``allowed_hosts`` (names in
    the ``Host`` header) refuses other names, e.g. a DNS-rebinding page reaching a loopback dashboard.
    """
    if isinstance(live, str):
        live = LiveFleet.connect(live, fleet)
    dash = Dashboard(live, db, admin, token, interval_s, max_upload)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started = not live.running
        if started:
            await run_in_threadpool(live.start)
        try:
            yield
        finally:
            dash.closing.set()
            if dash.deployer is not None:
                dash.deployer.close()
            if started:
                live.stop()

    routes = [Route("/", dash.page), Route("/api/state", dash.state), Route("/api/stream", dash.stream),
              Route("/api/history/{device}", dash.history), Route("/api/command", dash.command, methods=["POST"]),
              Route("/api/deploy", dash.deploy, methods=["POST"]), Route("/bundles/{key}/{name}", dash.bundle),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(_SecurityHeaders)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.state.dashboard = dash
    return app
