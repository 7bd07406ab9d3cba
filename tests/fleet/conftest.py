"""Fixtures for the fleet tests: a real mosquitto per test, a fresh PostgreSQL database per test on the
session's server (recorder), simulated devices that publish real telemetry, and a real headless
Chromium driven by selenium (dashboard)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sdk.fleet.broker import LocalBroker
from sdk.fleet.simulate import SimulatedDevice
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.simulate_profile import tiny_profile

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_db(postgres_url: str, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of its own for this test."""
    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name).lower()[:50]
    with psycopg.connect(postgres_url, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (run .ci/system-deps.sh test)")
    with LocalBroker() as b:
        yield b


class Devices:
    """Simulated devices (``sdk.fleet.simulate.SimulatedDevice``: real ``Telemetry`` publishers)."""

    def __init__(self, broker: LocalBroker, fleet: str, spool_dir: Path) -> None:
        self.broker, self.fleet, self.dir = broker, fleet, spool_dir
        self.profile = tiny_profile(0)
        self.devices: list[SimulatedDevice] = []

    def add(self, name: str, drifting: bool = False, seed: int = 1) -> SimulatedDevice:
        s = TelemetrySettings(broker=self.broker.url, fleet=self.fleet, device_id=name,
                              spool=str(self.dir / f"{name}.spool"), window_block=32, window_blocks=4,
                              reconnect_min_s=0.2).finish()
        d = SimulatedDevice(name, s, self.profile, drifting=drifting, seed=seed)
        self.devices.append(d)
        d.tel.start().wait_connected(5.0)
        return d

    @staticmethod
    def run(d: SimulatedDevice, frames: int, elapsed_s: float) -> None:
        """``frames`` frames as the device sees them ``elapsed_s`` after the start (a drifting
        device's scene is fully shifted after 15 s), then one telemetry report."""
        for _ in range(frames):
            d.step(elapsed_s)
        d.report(fps=10.0)

    def close(self) -> None:
        for d in self.devices:
            d.tel.close(flush_timeout=1.0)


@pytest.fixture
def devices(broker: LocalBroker, tmp_path: Path) -> Iterator[Callable[[str], Devices]]:
    made: list[Devices] = []

    def make(fleet: str) -> Devices:
        made.append(Devices(broker, fleet, tmp_path))
        return made[-1]

    yield make
    for d in made:
        d.close()


@pytest.fixture(scope="module")
def chrome(need):  # type: ignore[no-untyped-def]
    """Headless Chromium (Debian ``chromium`` + ``chromium-driver``) driven by selenium."""
    need("chromium")
    need("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1300"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[object, str], Path]:
    """``screenshot(driver, name)``: a PNG under the test's tmp dir, and under test-artifacts/ at the
    repository root when ``EMBER_ARTIFACTS`` is set."""

    def take(driver: object, name: str) -> Path:
        png = driver.get_screenshot_as_png()  # type: ignore[attr-defined]
        out = tmp_path / f"{name}.png"
        out.write_bytes(png)
        if os.environ.get("EMBER_ARTIFACTS"):
            (REPO / "test-artifacts").mkdir(exist_ok=True)
            (REPO / "test-artifacts" / f"{name}.png").write_bytes(png)
        return out

    return take


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., object]:
    """``wait_until(pred, timeout, what)``: poll ``pred`` until truthy (its value) or fail naming ``what``."""

    def wait(pred: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    return wait
