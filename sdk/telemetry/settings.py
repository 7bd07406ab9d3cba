"""Telemetry settings: the ``[telemetry]`` config section, a broker URI, or keyword arguments.

``broker`` accepts ``mqtt://host:1883`` and ``mqtts://user:pass@host:8883`` (TLS); user and password
in the URI override ``username``/``password``. An empty ``broker`` means spool-only.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from sdk.config import check_section, config_section
from sdk.errors import ConfigError

SPOOL_POLICIES = ("drop_oldest", "refuse")


@config_section("telemetry")
@dataclass
class TelemetrySettings:
    """Every ``[telemetry]`` key, declared once (defaults and types); see the README for their meaning."""

    broker: str = ""
    fleet: str = "default"
    device_id: str = ""
    kind: str = ""
    spool: str = "ember-telemetry.spool"
    spool_max_bytes: int = 64 * 1024 * 1024
    spool_full_policy: str = "drop_oldest"
    telemetry_qos: int = 0
    interval_s: float = 1.0
    drift_interval_s: float = 10.0
    client_id: str = ""
    keepalive: int = 30
    session_expiry_s: int = 86400
    username: str = ""
    password: str = ""
    ca_certs: str = ""
    certfile: str = ""
    keyfile: str = ""
    tls: bool = False
    reconnect_min_s: float = 0.25
    reconnect_max_s: float = 30.0
    max_inflight: int = 64
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    window_block: int = 128
    window_blocks: int = 4
    profile: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.broker).hostname or "localhost"

    @property
    def port(self) -> int:
        parts = urlsplit(self.broker)
        return parts.port or (8883 if self.use_tls else 1883)

    @property
    def use_tls(self) -> bool:
        return self.tls or urlsplit(self.broker).scheme == "mqtts" or bool(self.ca_certs)

    @property
    def base_topic(self) -> str:
        return f"ember/{self.fleet}/{self.device_id}"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, **overrides: Any) -> TelemetrySettings:
        """From a ``Config`` (its ``telemetry`` section), a plain section dict, and/or keywords."""
        section: Mapping[str, Any] = {}
        if config is not None:
            section = config.get("telemetry", config) if "telemetry" in config else config
        values = {k: v for k, v in {**dict(section), **overrides}.items() if v is not None}
        s = cls(**check_section("telemetry", values, "telemetry settings"))
        return s.finish()

    def finish(self) -> TelemetrySettings:
        """Fill defaults (device id = host name, client id) and validate; raises ConfigError."""
        if not self.device_id:
            self.device_id = _safe(socket.gethostname())
        if any(c in self.device_id + self.fleet for c in "/#+ ") or not self.fleet:
            raise ConfigError(f"telemetry.fleet {self.fleet!r} and telemetry.device_id {self.device_id!r} "
                              "must be non-empty and contain no '/', '#', '+' or spaces (they are MQTT topic levels)")
        if self.broker:
            parts = urlsplit(self.broker)
            if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
                raise ConfigError(f"telemetry.broker {self.broker!r}: use mqtt://host:1883 or "
                                  "mqtts://user:pass@host:8883")
            if parts.username:
                self.username = unquote(parts.username)
            if parts.password:
                self.password = unquote(parts.password)
        if self.spool_full_policy not in SPOOL_POLICIES:
            raise ConfigError(f"telemetry.spool_full_policy {self.spool_full_policy!r}: use one of {SPOOL_POLICIES}")
        if self.telemetry_qos not in (0, 1):
            raise ConfigError(f"telemetry.telemetry_qos must be 0 or 1 (got {self.telemetry_qos!r})")
        if self.interval_s <= 0 or self.spool_max_bytes < 4096:
            raise ConfigError("telemetry.interval_s must be > 0 and telemetry.spool_max_bytes >= 4096")
        for key in ("ca_certs", "certfile", "keyfile"):
            path = getattr(self, key)
            if path and not os.path.isfile(path):
                raise ConfigError(f"telemetry.{key}: file {path} does not exist")
        if not self.client_id:
            self.client_id = f"ember-{self.fleet}-{self.device_id}"[:64]
        return self


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "device"
