"""Custom keywords: a word the network never learnt ('happy', excluded from training) from 5 recordings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from apps.speech.data import fit, list_clips, read_audio, split_of
from apps.speech.enroll import enroll
from apps.speech.spotter import KeywordSpotter
from sdk.errors import ConfigError


@pytest.fixture(scope="module")
def happy(shared_data, tmp_path_factory):
    clips = [c for c in list_clips(shared_data / "speech_commands_extra") if c.word == "happy"]
    examples = tmp_path_factory.mktemp("happy")
    for c in clips[:5]:
        sf.write(examples / c.path.name.replace(".flac", ".wav"), read_audio(c.path), 16000)
    out = tmp_path_factory.mktemp("enrolled") / "happy-model"
    return enroll("happy", examples, out), out, clips[5:45]


def test_enrolled_word_is_found_and_others_are_not(happy, shared_data):
    summary, out, held_out = happy
    assert summary["examples"] == 5 and summary["negative_windows"] > 500
    assert json.loads((out / "speech.json").read_text())["labels"] == ["happy", "unknown"]
    kws = KeywordSpotter.from_folder(out, tier="fp32", backend="onnxruntime")
    fe = kws.frontend
    hits = np.mean([kws.probabilities(fe(fit(read_audio(c.path))))[0] >= 0.5 for c in held_out])
    others = [c for c in list_clips(shared_data / "speech_commands")
              if split_of(c.speaker) == "val" and c.label not in ("silence",)][::10]
    false = np.mean([kws.probabilities(fe(fit(read_audio(c.path))))[0] >= 0.5 for c in others])
    kws.close()
    assert len(held_out) == 40 and len(others) > 50
    assert hits >= 0.5, hits
    assert false <= 0.05, false


def test_enrolled_folder_runs_in_ember_run(happy, capsys):
    from sdk.cli import main

    _, out, held_out = happy
    assert main(["run", "speech", "--model", str(out), "--source", f"file://{held_out[0].path}",
                 "--no-telemetry"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    assert summary["keywords"] == ["happy"] and summary["windows"] >= 1


def test_too_few_examples_or_a_bad_word(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(ConfigError, match="at least 3"):
        enroll("marco", tmp_path, tmp_path / "out")
    with pytest.raises(ConfigError, match="--word"):
        enroll("two words", tmp_path, tmp_path / "out")
