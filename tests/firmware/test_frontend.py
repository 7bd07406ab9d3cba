"""The KWS audio front end: C (gcc, clang, Cortex-M4 under qemu) bit-exact with the Python reference,
sane features, and `export-c --frontend kws` projects that build and match the Python pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

import firmware_export
from firmware_export import toolchain
from firmware_export.frontend import verify
from sdk.errors import ConfigError, ExportError
from sdk.features import KwsFrontend

SR = 16000


def synthetic_clips(n_each: int = 42, seed: int = 7) -> dict[str, np.ndarray]:
    """Seeded 1 s int16 clips: noise, tones, chirps, silence, clipping, impulses/DC."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR

    def i16(x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(x), -32768, 32767).astype(np.int16)

    amps = lambda: 10 ** rng.uniform(0, np.log10(32767))  # 1 LSB .. full scale
    noise = [i16(rng.standard_normal(SR) * amps() / 3) for _ in range(n_each)]
    tones = [i16(amps() * np.sin(2 * np.pi * rng.uniform(20, 7990) * t + rng.uniform(0, 6.3)))
             for _ in range(n_each)]
    chirps = []
    for _ in range(n_each):
        f0, f1 = rng.uniform(20, 8000, 2)
        chirps.append(i16(amps() * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / 2))))
    clipped = [i16(np.clip(rng.uniform(1.5, 50) * 32767 * np.sin(2 * np.pi * rng.uniform(50, 4000) * t)
                           + rng.standard_normal(SR) * 3000, -32768, 32767)) for _ in range(n_each // 2)]
    clipped += [i16(np.where(rng.random(SR) < 0.5, -32768, 32767)) for _ in range(n_each // 2)]
    silence = [np.zeros(SR, np.int16), np.full(SR, -32768, np.int16), np.full(SR, 32767, np.int16),
               i16(rng.integers(-1, 2, SR))]
    impulses = []
    for _ in range(n_each // 2):
        x = np.zeros(SR)
        x[rng.integers(0, SR, 20)] = rng.choice([-32768, 32767], 20)
        impulses.append(i16(x + rng.uniform(-20000, 20000)))
    return {"noise": np.stack(noise), "tone": np.stack(tones), "chirp": np.stack(chirps),
            "clipped": np.stack(clipped), "silence": np.stack(silence), "impulse": np.stack(impulses)}


def speech_clips(root, n: int = 16) -> np.ndarray:
    import soundfile as sf

    files = sorted(p for p in (root / "speech_commands").rglob("*.flac") if p.parent.name != "_silence_")
    picked = files[:: max(1, len(files) // n)][:n]
    out = np.zeros((len(picked), SR), np.int16)
    for row, path in zip(out, picked):
        pcm, rate = sf.read(path, dtype="int16")
        assert rate == SR, path
        row[: min(SR, len(pcm))] = pcm[:SR]
    return out


@pytest.fixture(scope="module")
def fe() -> KwsFrontend:
    return KwsFrontend()


@pytest.fixture(scope="module")
def synthetic() -> np.ndarray:
    return np.concatenate(list(synthetic_clips().values()))


@pytest.fixture(scope="module")
def clips(synthetic, shared_data) -> np.ndarray:
    """209 clips: 193 synthetic + 16 Speech Commands recordings (the last rows)."""
    all_clips = np.concatenate([synthetic, speech_clips(shared_data)])
    assert len(all_clips) >= 200
    return all_clips


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_c_bit_exact_with_python(fe, clips, cc, need):
    need(cc)
    res = verify.verify_host(fe, clips, cc=cc)
    assert res["clips"] == len(clips)
    assert res["max_abs_diff"] == 0 and res["mismatched_clips"] == 0, res


def test_c_bit_exact_other_config(need):
    need("gcc")
    fe = KwsFrontend(window_ms=25, stride_ms=10, channels=13, lower_hz=60, upper_hz=4000, steps_per_octave=12)
    assert fe.fft_size == 512 and fe.window == 400
    clips = np.concatenate([synthetic_clips(n_each=6, seed=3)[k] for k in ("noise", "tone", "chirp", "clipped")])
    res = verify.verify_host(fe, clips[:, :8000])
    assert res["max_abs_diff"] == 0, res


def test_cortex_m4_qemu_matches(fe, clips, need):
    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    picked = clips[[45, len(clips) - 1]]  # a tone and a Speech Commands clip
    res = verify.verify_qemu(fe, picked)
    assert res["ok"] and res["exit_status"] == 0 and res["output"] == "kws-verify: 2/2", res
    wrong = np.stack([fe(c) for c in picked])
    wrong[1, 20, 5] ^= 1
    bad = verify.verify_qemu(fe, picked, expected=wrong)
    assert bad["exit_status"] == 1 and bad["output"] == "kws-verify: 1/2", bad


def test_tone_peaks_in_its_mel_channel(fe):
    t = np.arange(SR) / SR
    feats = fe(np.round(12000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16))
    assert feats.shape == (49, 40)
    mel = lambda f: 1127 * np.log(1 + f / 700)
    edges = np.linspace(mel(125), mel(7500), 42)
    peak = np.bincount(feats.argmax(axis=1)).argmax()
    assert edges[peak] < mel(1000) < edges[peak + 2]  # channel `peak` spans 1 kHz
    assert peak == np.abs(edges[1:-1] - mel(1000)).argmin()  # and its centre is the nearest
    assert (feats.argmax(axis=1) == peak).all()
    assert feats[:, peak].min() > feats[:, 0].max() + 50  # well above the far channels


def test_silence_gives_floor_and_loudness_is_monotonic(fe):
    assert (fe(np.zeros(SR, np.int16)) == 0).all()
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(SR)
    means = [fe(np.round(noise * a).astype(np.int16)).mean() for a in (10, 100, 1000, 10000)]
    assert means == sorted(means) and means[0] > 0
    # 10x amplitude = log2(100) = 6.64 octaves of energy = ~35 steps at 5.25 steps/octave
    assert 30 < means[3] - means[2] < 40


def test_frames_and_streaming(fe):
    assert (fe.window, fe.stride, fe.fft_size) == (480, 320, 512)
    assert fe.frames_for(SR) == 49 and fe.samples_for(49) == 15840 and fe.frames_for(15839) == 48
    assert fe.frames_for(479) == 0
    pcm = np.random.default_rng(2).integers(-3000, 3000, 5000).astype(np.int16)
    whole = fe(pcm)
    assert whole.shape == (fe.frames_for(5000), 40)
    for i in (0, 3, len(whole) - 1):
        assert (fe(pcm[i * 320: i * 320 + 480]) == whole[i]).all()
    assert fe(pcm[:100]).shape == (0, 40)


def test_float_input_and_int8_mapping(fe):
    x = np.array([0.0, 0.5 / 32768, -0.5 / 32768, 1.0, -1.0, 2.0, 0.25], np.float32)
    assert fe.from_float(x).tolist() == [0, 1, 0, 32767, -32768, 32767, 8192]
    audio = np.random.default_rng(3).uniform(-0.5, 0.5, SR).astype(np.float32)
    feats = fe.features_float(audio)
    assert (feats == fe(fe.from_float(audio))).all()
    assert (fe.to_int8(feats).astype(np.int16) == feats.astype(np.int16) - 128).all()
    scale, zp = fe.input_quantization
    assert np.allclose((fe.to_int8(feats).astype(np.float32) - zp) * scale, fe.dequantize(feats))
    lut = fe.int8_lut(0.1, 5)
    assert lut[0] == 5 and (np.diff(lut.astype(int)) >= 0).all() and lut[-1] == 127
    assert lut[21] == int(np.floor(21 / 5.25 / 0.1 + 0.5)) + 5


def test_bad_input_is_a_clear_error(fe):
    with pytest.raises(ConfigError, match="int16"):
        fe(np.zeros(SR, np.float32))
    with pytest.raises(ConfigError, match="mono"):
        fe(np.zeros((2, SR), np.int16))
    with pytest.raises(ConfigError, match="NaN"):
        fe.from_float(np.array([0.0, np.nan]))
    with pytest.raises(ConfigError, match="channels=0"):
        KwsFrontend(channels=0)
    with pytest.raises(ConfigError, match="window of 1600 samples"):
        KwsFrontend(window_ms=100)
    with pytest.raises(ConfigError, match="band"):
        KwsFrontend(upper_hz=9000)


@pytest.fixture(scope="module")
def kws_model(tmp_path_factory, fw_models, synthetic):
    """A DS-CNN on [1, 1, 49, 10] calibrated on the front end's (dequantized) features."""
    from sdk.optimize.tflite_export import onnx_to_tflite

    d = tmp_path_factory.mktemp("kws_frontend_model")
    onnx_path = fw_models.dscnn(d / "dscnn.onnx")
    fe = KwsFrontend(channels=10)
    cal = [fe.dequantize(fe(c)).reshape(1, 1, 49, 10) for c in synthetic[::8]]
    return onnx_to_tflite(onnx_path, d / "dscnn.tflite", int8=True, calibration=cal)


def test_export_with_frontend_builds_and_matches_python(kws_model, synthetic, tmp_path, need):
    from firmware_export.oracle import litert_outputs
    from firmware_export.tflite_model import load

    need("gcc")
    out = firmware_export.export(kws_model, tmp_path / "kws", name="kws", frontend="kws").out_dir
    src = out / "src"
    for f in ("ember_kws_frontend.c", "ember_kws_frontend.h", "ember_kws_config.h", "ember_kws_tables.h"):
        assert (src / f).is_file(), f
    readme = (out / "README.md").read_text()
    assert "ember_kws_features(pcm, EMBER_KWS_SAMPLES, feat)" in readme and "kws_invoke(in, out)" in readme
    assert "src/ember_kws_frontend.c" in (out / "Makefile").read_text()
    assert "src/ember_kws_frontend.o" in (out / "Makefile").read_text()
    assert "src/ember_kws_frontend.c" in (out / "CMakeLists.txt").read_text()
    assert "#define EMBER_KWS_CHANNELS 10" in (src / "ember_kws_config.h").read_text()
    toolchain.host_build(src, "kws", tmp_path / "plain_runner")  # the project's own runner still builds

    m = load(kws_model)
    x = m.tensors[m.inputs[0]]
    fe = KwsFrontend(channels=10)
    picked = synthetic[::20, : fe.samples_for(49)]  # EMBER_KWS_SAMPLES = 15840
    inputs = np.stack([fe.to_int8(fe(c), *x.qparams()).ravel() for c in picked])
    expected = litert_outputs(m.raw, inputs)
    got = verify.run_exported(out, "kws", picked, m.tensors[m.outputs[0]].size)
    assert (got == expected).all()
    assert len({row.tobytes() for row in got}) > len(picked) // 2  # inputs really differ, none saturated
    with pytest.raises(ExportError, match="EMBER_KWS_SAMPLES"):
        verify.run_exported(out, "kws", synthetic[:2], m.tensors[m.outputs[0]].size)


def test_exported_frontend_runs_on_cortex_m4(kws_model, tmp_path, need):
    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    out = firmware_export.export(kws_model, tmp_path / "kws", name="kws", frontend="kws").out_dir
    res = firmware_export.verify_qemu(out)
    assert res["ok"], res


def test_export_frontend_rejects_non_audio_models(fw_models, tmp_path):
    from sdk.cli import main

    onnx_path = fw_models.flatten_net(tmp_path / "f.onnx")  # input [1, 2, 8, 8]
    tfl = fw_models.to_int8(onnx_path, tmp_path / "f.tflite", [1, 2, 8, 8])
    with pytest.raises(ExportError, match="frames, channels"):
        firmware_export.export(tfl, tmp_path / "o", frontend="kws")
    assert not (tmp_path / "o").exists()
    assert main(["export-c", str(tfl), "--out", str(tmp_path / "o2"), "--frontend", "kws", "--json"]) == 2


def test_cli_frontend_option(kws_model, tmp_path, capsys):
    from sdk.cli import main

    assert main(["export-c", str(kws_model), "--out", str(tmp_path / "c"), "--name", "kws",
                 "--frontend", "kws", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["name"] == "kws"
    assert (tmp_path / "c" / "src" / "ember_kws_tables.h").is_file()


def test_arm_footprint_is_small(fe, need):
    need("arm-none-eabi-gcc")
    fp = verify.arm_footprint(fe)
    assert 0 < fp["text"] < 16 * 1024 and fp["bss"] == 2 * 512 * 4
