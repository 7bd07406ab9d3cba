"""The dashboard's HTTP API over a real server, broker and simulated device: read-only by default,
actions only with --admin and the right bearer token, validated exactly as the device validates,
HTTPS with --cert/--key, and clear errors for bad options."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from sdk.cli import main
from sdk.errors import ConfigError
from sdk.fleet.dashboard import DashboardServer, LiveFleet
from sdk.fleet.dashboard.app import STATIC
from sdk.fleet.dashboard.server import check_options, read_token

TOKEN = "api-token-0123456789abcdef"


def _post(url: str, body: object, token: str | None = None, scheme: str = "Bearer") -> httpx.Response:
    headers = {"authorization": f"{scheme} {token}"} if token is not None else {}
    return httpx.post(url + "api/command", json=body, headers=headers, timeout=10)


def test_actions_need_admin_and_the_token(broker, devices, wait_until) -> None:  # type: ignore[no-untyped-def]
    fleet = devices("api")
    dev = fleet.add("cam1")
    pinned: list[tuple[str, str | None]] = []
    dev.tel.register_handler("pin_tier", lambda tier, backend=None: pinned.append((tier, backend)) or "pinned")
    with DashboardServer(LiveFleet.connect(broker.url, "api"), port=0) as ro, \
            DashboardServer(LiveFleet.connect(broker.url, "api"), port=0, admin=True, token=TOKEN) as rw:
        fleet.run(dev, 1, 0.0)
        for srv in (rw, ro):  # two subscriptions: each gets the telemetry in its own time
            wait_until(lambda srv=srv: any(d["device"] == "cam1" and d["tier"]
                                           for d in httpx.get(srv.url + "api/state").json()["devices"]),
                       10, "cam1 and its tier in the state")
        state = httpx.get(ro.url + "api/state").json()
        assert state["admin"] is False and state["fleet"] == "api" and state["devices"][0]["tier"] in (
            "fp32", "fp16", "int8")
        pin = {"device": "cam1", "cmd": "pin_tier", "tier": "int8"}
        r = _post(ro.url, pin, TOKEN)
        assert r.status_code == 403 and "--admin" in r.json()["error"]
        assert _post(rw.url, pin).status_code == 401
        assert _post(rw.url, pin, "wrong-token-0123456789abcdef").status_code == 401
        assert _post(rw.url, pin, TOKEN, scheme="Basic").status_code == 401
        assert _post(rw.url, pin, TOKEN[:-1]).status_code == 401
        r = _post(rw.url, {**pin, "tier": "int4"}, TOKEN)
        assert r.status_code == 400 and "not a tier name" in r.json()["error"]
        r = _post(rw.url, {**pin, "shell": "reboot"}, TOKEN)
        assert r.status_code == 400 and "unexpected field" in r.json()["error"]
        assert _post(rw.url, {**pin, "device": "cam1/#"}, TOKEN).status_code == 400  # no topic injection
        assert _post(rw.url, {**pin, "device": "ghost"}, TOKEN).status_code == 404
        assert httpx.post(rw.url + "api/command", content=b"not json",
                          headers={"authorization": f"Bearer {TOKEN}"}).status_code == 400
        assert _post(rw.url, {**pin, "pad": "x" * 20_000}, TOKEN).status_code == 413
        assert pinned == []  # nothing refused reached the device
        r = _post(rw.url, {**pin, "backend": "onnxruntime"}, TOKEN)
        assert r.status_code == 200 and r.json()["sent"]["topic"] == "ember/api/cam1/cmd"
        wait_until(lambda: pinned == [("int8", "onnxruntime")], 10, "the device to run pin_tier")
        wait_until(lambda: any(e["kind"] == "cmd.result" and e["device"] == "cam1"
                               for e in httpx.get(ro.url + "api/state").json()["events"]), 10, "cmd.result")
        r = httpx.get(ro.url + "api/history/cam1")
        assert r.status_code == 404 and "--db" in r.json()["error"]


def test_history_from_a_postgresql_recording(broker, devices, pg_db, wait_until) -> None:  # type: ignore[no-untyped-def]
    """The history plots read the recorder's PostgreSQL store through the same history API."""
    from sdk.fleet.record import Recorder
    from sdk.telemetry.settings import TelemetrySettings

    rec = Recorder(TelemetrySettings(broker=broker.url, fleet="pg").finish(), pg_db, flush_ms=50).start()
    try:
        dev = devices("pg").add("cam1")
        for _ in range(3):  # telemetry (and the first tier.switch) through the device's own path
            dev.report(fps=10.0)
        assert dev.tel.flush(5.0)
        wait_until(lambda: rec.history.stored >= 4, 10, "the recorder to store the messages")
        with DashboardServer(LiveFleet.connect(broker.url, "pg"), db=pg_db, port=0) as s:
            h = httpx.get(s.url + "api/history/cam1").json()
            assert h["messages"] >= 4 and len(h["latency"]) == 3 and h["tier"][0][1] in ("fp32", "fp16", "int8")
            assert httpx.get(s.url + "api/history/other").json()["messages"] == 0
            assert httpx.get(s.url + "api/history/cam1?since=" + str(h["t0"] + 3600)).json()["messages"] == 0
    finally:
        rec.stop()


def test_page_is_self_contained_and_locked_down(broker) -> None:  # type: ignore[no-untyped-def]
    """No CDN (the page works offline) and a Content-Security-Policy that allows only its own files."""
    for f in STATIC.iterdir():
        text = f.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f.name
    with DashboardServer(LiveFleet.connect(broker.url, "page"), port=0) as s:
        page = httpx.get(s.url)
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(s.url, headers={"host": "rebound.example"}).status_code == 400  # DNS rebinding
        assert httpx.get(s.url.replace("127.0.0.1", "localhost") + "api/state").status_code == 200
        for name in ("app.js", "plot.js", "style.css"):
            assert httpx.get(f"{s.url}static/{name}").status_code == 200
        with httpx.stream("GET", s.url + "api/stream", timeout=10) as stream:
            first = next(line for line in stream.iter_lines() if line.startswith("data: "))
        assert json.loads(first[6:])["fleet"] == "page"


def test_https_with_cert_and_key(broker, self_signed_cert) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed_cert
    with DashboardServer(LiveFleet.connect(broker.url, "tls"), port=0, cert=str(cert), key=str(key)) as s:
        assert s.url.startswith("https://")
        r = httpx.get(s.url + "api/state", verify=ssl.create_default_context(cafile=str(cert)))
        assert r.status_code == 200 and r.json()["fleet"] == "tls"
        with pytest.raises(httpx.TransportError):
            httpx.get(s.url.replace("https://", "http://") + "api/state", timeout=3)


def test_bad_options_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        check_options("0.0.0.0", admin=True, token=None, cert=None, key=None)
    assert len(check_options("127.0.0.1", admin=True, token=None, cert=None, key=None) or "") >= 16
    assert check_options("0.0.0.0", admin=False, token=None, cert=None, key=None) is None
    with pytest.raises(ConfigError, match="both --cert"):
        check_options("127.0.0.1", admin=False, token=None, cert="c.pem", key=None)
    with pytest.raises(ConfigError, match="no such file"):
        check_options("127.0.0.1", admin=False, token=None, cert=str(tmp_path / "c"), key=str(tmp_path / "k"))
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16"):
        read_token(short)
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(tmp_path / "missing.txt")
    good = tmp_path / "token.txt"
    good.write_text(TOKEN + "\n")
    assert read_token(good) == TOKEN
    assert main(["fleet", "serve", "--broker", "mqtt://127.0.0.1:1", "--host", "0.0.0.0", "--admin"]) == 2
    assert "needs --token-file" in capsys.readouterr().err
    assert main(["fleet", "serve", "--broker", "mqtt://127.0.0.1:1", "--port", "0"]) == 2  # nothing listens there
    assert "connection refused" in capsys.readouterr().err


def test_deploy_is_refused_with_clear_errors(broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """POST /api/deploy: read-only 403, no token 401, not a bundle 400, too big 413, no devices online 409;
    nothing is started and no upload is kept. (A deployment that runs: test_dashboard_browser.py.)"""
    from sdk.rollout.bundle import pack
    from sdk.rollout.keys import keygen
    from sdk.rollout.simfleet import sim_model

    keygen(tmp_path / "k.key", tmp_path / "k.pub")
    good = pack(sim_model(tmp_path / "m", "1.1.0"), tmp_path / "k.key", tmp_path / "sim-1.1.0.bundle").read_bytes()
    auth = {"authorization": f"Bearer {TOKEN}"}
    with DashboardServer(LiveFleet.connect(broker.url, "dep"), port=0) as ro, \
            DashboardServer(LiveFleet.connect(broker.url, "dep"), port=0, admin=True, token=TOKEN,
                            max_upload=len(good) + 10) as rw:
        def post(server: DashboardServer, body: bytes, headers: dict[str, str], **q: str) -> httpx.Response:
            return httpx.post(server.url + "api/deploy", params=q, content=body, headers=headers, timeout=10)

        r = post(ro, good, auth)
        assert r.status_code == 403 and "--admin" in r.json()["error"]
        assert post(rw, good, {}).status_code == 401
        r = post(rw, b"not a bundle at all", auth)
        assert r.status_code == 400 and "not an Ember bundle" in r.json()["error"]
        r = post(rw, good + b"x" * 11, auth)
        assert r.status_code == 413 and "upload limit" in r.json()["error"]
        r = post(rw, good, auth, canary="150%")
        assert r.status_code == 400 and "--canary" in r.json()["error"]
        r = post(rw, good, auth, soak_s="soon")
        assert r.status_code == 400 and "soak_s" in r.json()["error"]
        r = post(rw, good, auth, url="file:///etc/passwd")
        assert r.status_code == 400 and "http://" in r.json()["error"]
        r = post(rw, good, auth, canary="50%")
        assert r.status_code == 409 and "no devices online" in r.json()["error"]
        dash = rw.app.state.dashboard
        assert not dash.deployer.running and dash.deployer.files == {}
        assert list(dash.deployer.dir.iterdir()) == []  # refused uploads are not kept
        assert httpx.get(rw.url + "bundles/guess/sim-1.1.0.bundle").status_code == 404
