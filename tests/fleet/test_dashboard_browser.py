"""The dashboard in a real headless Chromium, against a real mosquitto, simulated devices publishing
real telemetry, and a real recorder: a device appears, a drift alert shows, a rollback and a tier
change are in the event log, history plots are drawn, and an action needs the token."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By

from sdk.fleet.dashboard import DashboardServer, LiveFleet
from sdk.fleet.record import HistoryDB
from sdk.fleet.watch import FleetSubscriber
from sdk.telemetry.settings import TelemetrySettings

TOKEN = "test-token-0123456789abcdef"


def _text(driver, css: str) -> str:  # type: ignore[no-untyped-def]
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def test_dashboard_in_chromium(broker, devices, chrome, screenshot, wait_until, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = HistoryDB(tmp_path / "fleet.db")
    recorder = FleetSubscriber(TelemetrySettings(broker=broker.url, fleet="web").finish(), db.add).start()
    server = DashboardServer(LiveFleet.connect(broker.url, "web"), db=str(db.path), port=0, admin=True,
                             token=TOKEN, interval_s=0.2).start()
    try:
        fleet = devices("web")
        calm, drifting = fleet.add("cam-calm", seed=1), fleet.add("cam-drift", drifting=True, seed=2)
        pinned: list[str] = []
        drifting.tel.register_handler("pin_tier", lambda tier, backend=None: pinned.append(tier) or "pinned")
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
        # a rollback and the tier change it causes, through the device's own event path
        drifting.bus.publish("deploy.rollback", deployment="dep-7", to_version="1.2.0", reason="p95 over budget",
                             level="warning")
        drifting.bus.publish("tier.switch", reason="rollback", tier="fp32", **{"from": drifting.tier, "to": "fp32"})
        wait_until(lambda: chrome.find_elements(By.CSS_SELECTOR, '#events li.rollback[data-device="cam-drift"]'),
                   10, "the rollback in the event log")
        assert "dep-7" in _text(chrome, '#events li[data-kind="deploy.rollback"]')
        wait_until(lambda: _text(chrome, 'tr[data-device="cam-drift"] .col-tier') == "fp32", 10, "tier fp32")
        assert chrome.find_elements(By.CSS_SELECTOR, '#events li[data-kind="tier.switch"][data-device="cam-drift"]')
        # history plots from the recording
        for d in (calm, drifting):
            assert d.tel.flush(5.0)
        wait_until(lambda: db.stored >= 8, 10, "the recorder to store the messages")
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
        calm.tel.close()  # a clean disconnect publishes the retained "offline" status
        wait_until(lambda: _text(chrome, 'tr[data-device="cam-calm"] .col-status').startswith("offline"), 10,
                   "cam-calm offline")
        shot = screenshot(chrome, "dashboard")
        assert shot.stat().st_size > 10_000
    finally:
        server.stop()
        recorder.stop()
        db.close()
