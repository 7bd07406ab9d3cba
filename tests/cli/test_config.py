"""Configuration precedence: defaults < files < EMBER_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk.config import Config, env_overrides, load_config, setup_logging
from sdk.errors import ConfigError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert cfg.get_path("telemetry.fleet") == "default"
    assert cfg.get_path("pipeline.queue_size") == 8
    assert cfg.get_path("no.such.key", 42) == 42


def test_precedence_file_env_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg"
    _write(xdg / "ember" / "config.toml", '[telemetry]\nfleet = "user"\ndevice_id = "u1"\n')
    _write(tmp_path / "ember.toml", '[telemetry]\nfleet = "project"\n')
    explicit = _write(tmp_path / "other.toml", '[pipeline]\nqueue_size = 3\n')
    env = {"XDG_CONFIG_HOME": str(xdg), "EMBER_PIPELINE_QUEUE_SIZE": "5", "EMBER_TELEMETRY_SPOOL_MAX_BYTES": "1000"}
    cfg = load_config(explicit, env=env)
    assert cfg.get_path("telemetry.fleet") == "project"          # project file beats user file
    assert cfg.get_path("telemetry.device_id") == "u1"           # user file still fills the rest
    assert cfg.get_path("pipeline.queue_size") == 5              # env beats the explicit file
    assert cfg.get_path("telemetry.spool_max_bytes") == 1000     # env values are typed
    cfg = load_config(explicit, env=env, overrides={"pipeline.queue_size": 2, "log.level": None})
    assert cfg.get_path("pipeline.queue_size") == 2              # flags beat everything
    assert cfg.get_path("log.level") == "WARNING"                # None flags change nothing


def test_env_parsing_keeps_strings_and_ignores_unknown_sections() -> None:
    out = env_overrides({"EMBER_TELEMETRY_BROKER": "mqtt://h:1883", "EMBER_NOPE_X": "1", "OTHER": "2"},
                        {"telemetry"})
    assert out == {"telemetry": {"broker": "mqtt://h:1883"}}


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.toml", "[telemetry\nfleet = 1")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(bad, env={"XDG_CONFIG_HOME": str(tmp_path)})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})


def test_unknown_log_level() -> None:
    with pytest.raises(ConfigError, match="unknown log level"):
        setup_logging("LOUD")


def test_config_section_is_a_copy() -> None:
    cfg = Config({"a": {"b": 1}})
    cfg.section("a")["b"] = 2
    assert cfg.get_path("a.b") == 1


def test_a_section_that_is_not_a_table_names_the_file(tmp_path: Path) -> None:
    bad = _write(tmp_path / "flat.toml", "telemetry = 5\n")
    with pytest.raises(ConfigError, match=r"flat.toml: \[telemetry\] must be a table"):
        load_config(bad, env={"XDG_CONFIG_HOME": str(tmp_path)})
