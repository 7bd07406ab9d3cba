"""fit resumes to the same weights; every ``ember compress`` subcommand writes a model folder."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from sdk.cli import main
from sdk.compress import evaluate, fit
from sdk.compress.toy import tiny_cnn, tiny_data
from sdk.errors import ConfigError


class Interrupt(Exception):
    pass


def _run(epochs: int, ckpt, resume: bool = True, stop_after: int | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = tiny_cnn(6)
    train, _ = tiny_data(96)
    steps = [0]

    def crash(_model: torch.nn.Module) -> None:
        steps[0] += 1
        if stop_after is not None and steps[0] == stop_after:
            raise Interrupt

    return fit(model, train, epochs, 1e-2, checkpoint=ckpt, resume=resume, progress=False, batch_size=16,
               after_step=crash)


def test_resume_continues_the_same_run(tmp_path) -> None:
    straight = _run(3, tmp_path / "a.pt")
    with pytest.raises(Interrupt):
        _run(3, tmp_path / "b.pt", stop_after=6)  # killed in epoch 2 (4 batches per epoch)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 1
    resumed = _run(3, tmp_path / "b.pt")
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    fresh = _run(3, tmp_path / "b.pt", resume=False)  # ignoring the checkpoint: from scratch, same result
    torch.testing.assert_close(fresh.stem[0].weight, straight.stem[0].weight, rtol=0, atol=0)
    _, val = tiny_data(96)
    assert 0.0 <= evaluate(straight, val) <= 1.0
    with pytest.raises(ConfigError):
        fit(tiny_cnn(), [1, 2, 3], 1, 1e-3, progress=False)  # not (x, y) batches


@pytest.mark.parametrize("technique,extra", [
    ("prune", ["--ratio", "0.5"]), ("qat", []), ("distill", ["--teacher", "sdk.compress.toy:tiny_cnn"]),
    ("factorize", ["--rank", "2"]), ("factorize", ["--rank", "2", "--method", "tucker2"]),
    ("cluster", ["--clusters", "8"])])
def test_cli_subcommands_write_a_model_folder(tmp_path, capsys, technique, extra) -> None:
    out = tmp_path / technique
    rc = main(["compress", technique, "--model", "sdk.compress.toy:tiny_cnn", "--data", "sdk.compress.toy:tiny_data",
               "--out", str(out), "--epochs", "1", "--json", *extra])
    assert rc == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["folder"] == str(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["compression"]["technique"] == technique and manifest["compression"]["macs"] > 0
    tiers = {(v["tier"], v["backend"]) for v in manifest["variants"]}
    assert {("fp32", "onnxruntime"), ("int8", "onnxruntime")} <= tiers
    if "tucker2" in extra:  # the k x k stem became 1x1 + core + 1x1
        assert any(r.get("method") == "tucker2" for r in manifest["compression"]["layers"].values())
    if technique == "qat":  # both int8 runtimes carry the learned scales and were measured
        assert ("int8", "litert") in tiers
        qat = [v for v in manifest["variants"] if v["tier"] == "int8"]
        assert all(v.get("source") == "qat" and v["metrics"] for v in qat), qat
    assert (out / ".compress" / f"{technique}.pt").exists() or technique == "prune"


def test_cli_bad_specs_are_clear_errors(tmp_path, capsys) -> None:
    rc = main(["compress", "prune", "--model", "nope", "--data", "sdk.compress.toy:tiny_data", "--out",
               str(tmp_path), "--ratio", "0.5"])
    assert rc == 2 and "MODULE:FUNCTION" in capsys.readouterr().err
    rc = main(["compress", "prune", "--model", "sdk.compress.toy:missing", "--data", "sdk.compress.toy:tiny_data",
               "--out", str(tmp_path), "--ratio", "0.5"])
    assert rc == 2 and "cannot be loaded" in capsys.readouterr().err
