"""The ``ember`` command: help for every subcommand, clear refusals, the installed console script."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from sdk.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)  # type: ignore[arg-type]


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("run", "eval"):
        assert name in out


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ember " + command)
    assert len(out.splitlines()) >= 3


@pytest.mark.parametrize("app", ["vision", "speech", "health"])
def test_run_refuses_missing_app_clearly(app: str, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sdk.apps

    monkeypatch.setattr(sdk.apps, "_find", lambda name: False)  # as in an install without apps/
    assert main(["run", app]) == 2
    err = capsys.readouterr().err
    assert f"the {app} app" in err and "not in this version" in err


def test_unknown_app(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", "toaster"])
    assert e.value.code == 2
    assert "invalid choice: 'toaster'" in capsys.readouterr().err
    from sdk.apps import load_app
    from sdk.errors import EmberError

    with pytest.raises(EmberError, match="unknown app 'toaster'"):
        load_app("toaster")


def test_bad_log_level_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "LOUD", "run", "vision"]) == 2
    assert "unknown log level" in capsys.readouterr().err


def test_console_script_and_module_entry_point() -> None:
    exe = shutil.which("ember") or str(__import__("pathlib").Path(sys.executable).parent / "ember")
    out = subprocess.run([exe, "--version"], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("ember ")
    out = subprocess.run([sys.executable, "-m", "sdk", "--help"], check=False, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "commands:" in out.stdout
