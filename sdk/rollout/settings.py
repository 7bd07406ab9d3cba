"""The ``[rollout]`` config section: where a device keeps its model versions, which public keys it
trusts, and the limits of its rollout agent (``sdk.rollout.agent.DeviceAgent.from_config``)::

    [rollout]
    store = "/var/lib/ember/models/det"
    trusted_keys = ["/etc/ember/keys/release.pub"]
    max_bundle_bytes = 67108864
    cpu_budget = 0.2

Keys come from here (the device's own files), never from MQTT. Light on purpose: the config schema
imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdk.config import check_section, config_section
from sdk.errors import ConfigError


@config_section("rollout")
@dataclass
class RolloutSettings:
    """Device-side limits; a deployment's shadow criteria may tighten, never widen, the CPU share."""

    store: str = ""                    # the VersionStore folder (active/previous/candidate versions)
    trusted_keys: list[str] = field(default_factory=list)  # PEM public key files
    workdir: str = ""                  # downloads and chunks (default: a temporary folder)
    max_bundle_bytes: int = 256 << 20
    shadow_fraction: float = 0.5       # share of frames the candidate also runs on
    cpu_budget: float = 0.25           # candidate compute time / wall time, at most
    shadow_frames: int = 200           # frames compared before deciding
    shadow_timeout_s: float = 300.0    # no decision by then: discard
    download_timeout_s: float = 120.0
    download_retries: int = 3
    report_every: int = 50             # publish a rollout.shadow report every N compared frames

    def __post_init__(self) -> None:
        if not 0 < self.shadow_fraction <= 1 or not 0 < self.cpu_budget <= 1:
            raise ConfigError("rollout.shadow_fraction and rollout.cpu_budget must be in (0, 1]")
        if self.max_bundle_bytes < 1024 or self.shadow_frames < 0 or self.report_every < 1:
            raise ConfigError("rollout.max_bundle_bytes must be >= 1024, shadow_frames >= 0, report_every >= 1")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, **overrides: Any) -> RolloutSettings:
        """From a ``Config`` (its ``rollout`` section), a plain section dict, and/or keywords."""
        section: Mapping[str, Any] = {}
        if config is not None:
            section = config.get("rollout", config) if "rollout" in config else config
        values = {k: v for k, v in {**dict(section), **overrides}.items() if v is not None}
        return cls(**check_section("rollout", values, "rollout settings"))
