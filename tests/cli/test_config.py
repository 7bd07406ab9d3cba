"""Configuration precedence: defaults < files < EMBER_* environment < flags."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import sdk.config
from sdk.config import (
    Config,
    choices,
    config_section,
    defaults,
    env_overrides,
    load_config,
    sections,
    setup_logging,
)
from sdk.errors import ConfigError
from sdk.telemetry.settings import TelemetrySettings


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


# ---- the typed schema ------------------------------------------------------------------------------
def _other_value(value: Any) -> tuple[str, Any]:
    """A value of the declared type that differs from the default (as an environment variable's text)."""
    if isinstance(value, bool):
        return str(not value).lower(), (not value)
    if isinstance(value, int):
        return str(value + 3), value + 3
    if isinstance(value, float):
        return str(value + 0.5), value + 0.5
    if isinstance(value, list):
        return '["battery < 30 -> step_down"]', ["battery < 30 -> step_down"]
    assert value is None, value  # float | None
    return "12.5", 12.5


def test_every_key_of_every_section_has_an_environment_variable(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for section, keys in defaults().items():
        for key, default in keys.items():
            spec = dataclasses.fields(sections()[section])
            name = next(f.name for f in spec if f.metadata.get("key", f.name) == key)
            choice = next(f.metadata.get("choices") for f in spec if f.name == name)
            if choice:
                text = want = next(c for c in choice if c != default)
            elif isinstance(default, str):
                text = want = "some-value"
            else:
                text, want = _other_value(default)
            env = {"XDG_CONFIG_HOME": str(tmp_path), f"EMBER_{section.upper()}_{key.upper()}": text}
            assert load_config(env=env).get_path(f"{section}.{key}") == want, (section, key)
    assert {"log", "pipeline", "device", "models", "optimize", "telemetry"} <= set(defaults())
    cfg = load_config(env={"XDG_CONFIG_HOME": str(tmp_path), "EMBER_OPTIMIZE_METHOD": "entropy",
                           "EMBER_TELEMETRY_DEVICE_ID": "007"})
    assert cfg.settings("optimize").method == "entropy"  # ignored before the schema
    assert cfg.get_path("telemetry.device_id") == "007"  # a string key keeps the text, not the number 7


def test_telemetry_defaults_are_the_settings_class(tmp_path: Path) -> None:
    cfg = load_config(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg["telemetry"] == dataclasses.asdict(TelemetrySettings())
    assert cfg.settings("telemetry") == TelemetrySettings()


@pytest.mark.parametrize("text, match", [
    ("[telemetry]\nbrokr = 'mqtt://h'\n", r"bad.toml: unknown key telemetry.brokr; valid keys of \[telemetry\]: broker"),
    ("[telemtry]\nbroker = 'mqtt://h'\n", r"bad.toml: unknown section \[telemtry\]; valid sections: device, log, "),
    ("[pipeline]\nqueue_size = 'big'\n", r"bad.toml: pipeline.queue_size must be int, got 'big'"),
    ("[pipeline]\nqueue_size = true\n", r"pipeline.queue_size must be int, got True"),
    ("[optimize]\nmethod = 'kl'\n", r"optimize.method = 'kl' is not one of minmax, entropy, percentile"),
    ("[models]\nbudget_ms = 'fast'\n", r"models.budget_ms must be float \| None"),
    ("[models]\nthreads = 2\n[models.extra]\nx = 1\n", r"unknown key models.extra"),
])
def test_bad_keys_and_values_name_the_file_and_the_valid_ones(tmp_path: Path, text: str, match: str) -> None:
    bad = _write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match=match):
        load_config(bad, env={"XDG_CONFIG_HOME": str(tmp_path)})


def test_bad_environment_variables_and_flags_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment variable EMBER_TELEMETRY_BROKR: unknown key telemetry.brokr"):
        load_config(env={"XDG_CONFIG_HOME": str(tmp_path), "EMBER_TELEMETRY_BROKR": "mqtt://h"})
    with pytest.raises(ConfigError, match="EMBER_PIPELINE_QUEUE_SIZE: pipeline.queue_size must be int"):
        load_config(env={"XDG_CONFIG_HOME": str(tmp_path), "EMBER_PIPELINE_QUEUE_SIZE": "lots"})
    with pytest.raises(ConfigError, match="command-line flags: pipeline.policy = 'newest'"):
        load_config(env={"XDG_CONFIG_HOME": str(tmp_path)}, overrides={"pipeline.policy": "newest"})
    with pytest.raises(ConfigError, match="unknown key telemetry.brokr"):
        TelemetrySettings.from_config({"telemetry": {"brokr": "mqtt://h"}})


def test_a_section_is_declared_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an app does: one dataclass gives defaults, types, the TOML table and the variables."""
    monkeypatch.setattr(sdk.config, "SECTIONS", dict(sections()))

    @config_section("speech")
    @dataclasses.dataclass
    class SpeechSettings:
        vad_gate_db: float = -45.0
        hop_ms: int = 500
        mode: str = dataclasses.field(default="stream", metadata=choices("stream", "push_to_talk"))

    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert load_config(env=env).settings("speech") == SpeechSettings()
    f = _write(tmp_path / "s.toml", "[speech]\nvad_gate_db = -30\n")
    cfg = load_config(f, env={**env, "EMBER_SPEECH_HOP_MS": "250"})
    assert cfg.settings("speech") == SpeechSettings(vad_gate_db=-30.0, hop_ms=250)
    assert isinstance(cfg.settings("speech").vad_gate_db, float)  # TOML's -30 is an int: converted
    with pytest.raises(ConfigError, match="speech.mode = 'always' is not one of stream, push_to_talk"):
        load_config(env={**env, "EMBER_SPEECH_MODE": "always"})


def test_device_class_from_the_config_file_reaches_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from sdk.cli import main
    from sdk.device import set_device_class
    from sdk.models.builtin import tiny_convnet
    from sdk.models.variants import make_model_folder

    monkeypatch.delenv("EMBER_DEVICE_CLASS", raising=False)
    make_model_folder(tmp_path / "m", tiny_convnet(tmp_path / "src.onnx", input_hw=(16, 16)), "m", tiers=("fp32",))
    cfg = _write(tmp_path / "c.toml", '[device]\nclass = "orchard-pi5"\n')
    try:
        assert main(["--config", str(cfg), "models", "inspect", str(tmp_path / "m")]) == 0
        assert json.loads(capsys.readouterr().out)["device_class"] == "orchard-pi5"
    finally:
        set_device_class(None)


def test_models_dir_finds_a_model_by_name(tmp_path: Path) -> None:
    from sdk.models.builtin import tiny_convnet
    from sdk.models.manager import ModelManager
    from sdk.models.variants import make_model_folder
    from sdk.testing import FakeClock, ScriptedDevice

    make_model_folder(tmp_path / "zoo" / "kws", tiny_convnet(tmp_path / "src.onnx", input_hw=(16, 16)), "kws",
                      tiers=("fp32",))
    cfg = load_config(_write(tmp_path / "c.toml", f'[models]\ndir = "{tmp_path / "zoo"}"\n'), env={})
    clock = FakeClock()
    with ModelManager.from_config("kws", cfg, device=ScriptedDevice(clock), clock=clock) as manager:
        assert manager.store.folder == tmp_path / "zoo" / "kws"
