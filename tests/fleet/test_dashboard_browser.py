"""The dashboard in a real headless Chromium, against a real mosquitto, simulated devices publishing
real telemetry, and a real recorder: a device appears, a drift alert shows, a rollback and a tier
change are in the event log, history plots are drawn, and an action needs the token."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By

from sdk.fleet.dashboard import DashboardServer, LiveFleet
from sdk.fleet.record import Recorder
from sdk.rollout.deploy import FleetController
from sdk.telemetry.settings import TelemetrySettings

TOKEN = "test-token-0123456789abcdef"


def _text(driver, css: str) -> str:  # type: ignore[no-untyped-def]
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def test_dashboard_in_chromium(broker, devices, chrome, screenshot, wait_until, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder(TelemetrySettings(broker=broker.url, fleet="web").finish(), tmp_path / "fleet.db",
                        flush_ms=50).start()
    server = DashboardServer(LiveFleet.connect(broker.url, "web"), db=str(tmp_path / "fleet.db"), port=0,
                             admin=True, token=TOKEN, interval_s=0.2).start()
    try:
        fleet = devices("web")
        calm, drifting = fleet.add("cam-calm", seed=1), fleet.add("cam-drift", drifting=True, seed=2)
        pinned: list[str] = []
        drifting.tel.register_handler("pin_tier", lambda tier, backend=None: pinned.append(tier) or "pinned")
        rolled: list[dict[str, object]] = []
        drifting.tel.register_handler("rollback", lambda **kw: rolled.append(kw) or "rolled back")
        chrome.get(server.url)
        for d in (calm, drifting):  # a first report: the devices appear
            fleet.run(d, 1, 0.0)
        wait_until(lambda: _text(chrome, 'tr[data-device="cam-calm"] .col-status').startswith("online"), 10,
                   "cam-calm online in the table")
        assert _text(chrome, "#conn") == "live"
        assert chrome.find_element(By.ID, "alerts").is_displayed() is False
        for _ in range(2):  # 2 x 160 frames: full drift windows; the drifting scene is shifted (t = 30 s)
            fleet.run(calm, 160, 30.0)
            fleet.run(drifting, 160, 30.0)
        wait_until(lambda: "cam-drift" in _text(chrome, "#alerts"), 10, "the drift alert banner")
        assert "cam-calm" not in _text(chrome, "#alerts")
        assert "drift-alert" in chrome.find_element(By.CSS_SELECTOR, 'tr[data-device="cam-drift"] .col-drift') \
            .get_attribute("class")
        assert "alert" not in _text(chrome, 'tr[data-device="cam-calm"] .col-drift')
        # a deployment rolled back: the fleet controller's steps on ember/web/_deploy/events, the device's
        # rollout events and the tier change through the device's own event path
        with FleetController(TelemetrySettings(broker=broker.url, fleet="web").finish()) as fc:
            fc.step("d-7", "canary", "canary group: cam-drift", version="1.3.0", canaries=["cam-drift"],
                    targets=["cam-calm", "cam-drift"])
            drifting.bus.publish("rollout.promoted", deployment="d-7", version="1.3.0", active="1.3.0")
            wait_until(lambda: _text(chrome, 'tr[data-device="cam-drift"] .col-version') == "1.3.0", 10, "v1.3.0")
            assert "1/2 promoted" in _text(chrome, '#deployments tr[data-deployment="d-7"]')
            fc.step("d-7", "rolled_back", "canary latency p95 over budget", version="1.3.0")
            drifting.bus.publish("rollout.rolled_back", deployment="d-7", version="1.2.0", active="1.2.0")
            drifting.bus.publish("tier.switch", reason="rollback", tier="fp32", **{"from": drifting.tier, "to": "fp32"})
        wait_until(lambda: chrome.find_elements(By.CSS_SELECTOR, '#deployments tr[data-phase="rolled_back"]'), 10,
                   "the deployment rolled back")
        wait_until(lambda: _text(chrome, 'tr[data-device="cam-drift"] .col-version') == "1.2.0", 10, "v1.2.0")
        assert "cam-drift:rolled_back" in _text(chrome, '#deployments tr[data-deployment="d-7"]')
        wait_until(lambda: chrome.find_elements(By.CSS_SELECTOR, '#events li.rollback[data-device="cam-drift"]'),
                   10, "the device's rollback in the event log")
        assert "over budget" in _text(chrome, '#events li[data-kind="deploy.rolled_back"]')
        wait_until(lambda: _text(chrome, 'tr[data-device="cam-drift"] .col-tier') == "fp32", 10, "tier fp32")
        assert chrome.find_elements(By.CSS_SELECTOR, '#events li[data-kind="tier.switch"][data-device="cam-drift"]')
        # history plots from the recording
        for d in (calm, drifting):
            assert d.tel.flush(5.0)
        wait_until(lambda: recorder.history.stored >= 8, 10, "the recorder to store the messages")
        chrome.find_element(By.CSS_SELECTOR, 'tr[data-device="cam-drift"] .col-device').click()
        points = {k: wait_until(lambda k=k: int(chrome.find_element(By.ID, f"plot-{k}").get_attribute("data-points")
                                              or 0), 10, f"the {k} plot") for k in ("drift", "latency", "tier")}
        assert points["latency"] >= 2 and points["tier"] >= 2 and points["drift"] >= 1
        # an action: refused without the token, done with it
        chrome.find_element(By.ID, "token").clear()
        chrome.find_element(By.CSS_SELECTOR, 'tr[data-device="cam-drift"] button.pin').click()
        wait_until(lambda: _text(chrome, "#action-result").startswith("401"), 10, "the refusal")
        assert pinned == []
        chrome.find_element(By.ID, "token").send_keys(TOKEN)
        chrome.find_element(By.CSS_SELECTOR, 'tr[data-device="cam-drift"] button.pin').click()
        wait_until(lambda: "pin_tier sent to cam-drift" in _text(chrome, "#action-result"), 10, "the command sent")
        wait_until(lambda: pinned == ["fp32"], 10, "the device to run pin_tier")
        wait_until(lambda: chrome.find_elements(By.CSS_SELECTOR, '#events li[data-kind="cmd.result"]'), 10,
                   "cmd.result in the event log")
        chrome.find_element(By.CSS_SELECTOR, 'tr[data-device="cam-drift"] button.rollback').click()
        chrome.switch_to.alert.accept()  # "Roll cam-drift back to its previous model version?"
        wait_until(lambda: rolled == [{}], 10, "the device to run rollback")
        calm.tel.close()  # a clean disconnect publishes the retained "offline" status
        wait_until(lambda: _text(chrome, 'tr[data-device="cam-calm"] .col-status').startswith("offline"), 10,
                   "cam-calm offline")
        shot = screenshot(chrome, "dashboard")
        assert shot.stat().st_size > 10_000
    finally:
        server.stop()
        recorder.stop()


def test_deploy_from_the_page(broker, chrome, screenshot, wait_until, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A signed bundle uploaded on the page reaches 2 simulated devices (real agents, version stores and
    ONNX Runtime models) from the dashboard's own HTTP: refused without the token, 409 while one runs,
    then the deployment shows done and both devices run the new version."""
    import httpx

    from sdk.rollout.bundle import pack
    from sdk.rollout.keys import keygen
    from sdk.rollout.simfleet import SimFleet, sim_model

    keygen(tmp_path / "k.key", tmp_path / "k.pub")
    bundle = pack(sim_model(tmp_path / "src" / "1.1.0", "1.1.0"), tmp_path / "k.key", tmp_path / "sim-1.1.0.bundle")
    with SimFleet(broker.url, 2, tmp_path / "fleet", sim_model(tmp_path / "src" / "1.0.0", "1.0.0"),
                  [tmp_path / "k.pub"], fleet="dep", fps=60, report_s=0.1) as fleet, \
            DashboardServer(LiveFleet.connect(broker.url, "dep"), port=0, admin=True, token=TOKEN,
                            interval_s=0.2) as server:
        chrome.get(server.url)
        for d in ("sim000", "sim001"):
            wait_until(lambda d=d: _text(chrome, f'tr[data-device="{d}"] .col-version') == "1.0.0", 10, f"{d} on 1.0.0")
        chrome.find_element(By.ID, "deploy-bundle").send_keys(str(bundle))
        for field, value in (("deploy-canary", "50%"), ("deploy-soak", "1"), ("deploy-baseline", "0.5"),
                             ("deploy-p95-ratio", "5")):
            chrome.find_element(By.ID, field).send_keys(value)
        chrome.find_element(By.ID, "token").clear()
        chrome.find_element(By.ID, "deploy-btn").click()
        wait_until(lambda: _text(chrome, "#deploy-result").startswith("401"), 10, "the refusal without the token")
        assert server.app.state.dashboard.deployer.job == {}
        chrome.find_element(By.ID, "token").send_keys(TOKEN)
        chrome.find_element(By.ID, "deploy-btn").click()
        wait_until(lambda: "started" in _text(chrome, "#deploy-result"), 10, "the deployment started")
        job = server.app.state.dashboard.deployer.job
        assert job["version"] == "1.1.0" and "/bundles/" in job["url"] and job["url"].startswith(server.url)
        r = httpx.post(server.url + "api/deploy", content=bundle.read_bytes(), timeout=10,
                       headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 409 and "still running" in r.json()["error"]
        row = f'#deployments tr[data-deployment="{job["deployment"]}"]'
        wait_until(lambda: chrome.find_elements(By.CSS_SELECTOR, row + '[data-phase="done"]'), 30,
                   f"the deployment done ({_text(chrome, '#deploy-job')})")
        assert "2/2 promoted" in _text(chrome, row)
        for d in ("sim000", "sim001"):
            wait_until(lambda d=d: _text(chrome, f'tr[data-device="{d}"] .col-version') == "1.1.0", 10, f"{d} on 1.1.0")
        assert fleet.versions() == {"sim000": "1.1.0", "sim001": "1.1.0"}
        wait_until(lambda: _text(chrome, "#deploy-job").endswith(": done"), 10, "the job's status on the page")
        assert screenshot(chrome, "dashboard-deploy").stat().st_size > 10_000
