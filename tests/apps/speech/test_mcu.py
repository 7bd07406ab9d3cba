"""The shipped int8 model on a microcontroller: ``export-c --frontend kws`` gives C whose int8 outputs (PCM ->
integer front end -> model) equal Python's on real clips, on the host and on a Cortex-M4 under qemu."""

from __future__ import annotations

import numpy as np
import pytest

from apps.speech.spotter import MODEL_DIR, KeywordSpotter, model_input
from sdk.features.kws import KwsFrontend


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import firmware_export

    return firmware_export.export(MODEL_DIR / "model.int8.tflite", tmp_path_factory.mktemp("fw") / "speech",
                                  name="speech_kws", frontend="kws").out_dir


@pytest.fixture(scope="module")
def clips_and_python(sample_clips):
    """The bundled clips cut to EMBER_KWS_SAMPLES, and Python's int8 outputs (LiteRT reference kernels)."""
    from firmware_export.oracle import litert_outputs
    from firmware_export.tflite_model import load

    fe = KwsFrontend()
    clips = np.stack([c[: fe.samples_for(49)] for _, c in sample_clips])
    m = load(MODEL_DIR / "model.int8.tflite")
    x = m.tensors[m.inputs[0]]
    inputs = np.stack([fe.to_int8(fe(c), *x.qparams()).ravel() for c in clips])
    return clips, litert_outputs(m.raw, inputs), m.tensors[m.outputs[0]].size


def test_host_c_matches_python_and_the_app(exported, clips_and_python, need):
    from firmware_export.frontend import verify

    need("gcc")
    clips, expected, size = clips_and_python
    got = verify.run_exported(exported, "speech_kws", clips, size)
    assert np.array_equal(got, expected)  # identical int8 outputs
    assert len({row.tobytes() for row in got}) == len(clips)  # real, different clips
    # the Python app on LiteRT's reference kernels: the same int8 outputs, hence the same words
    app = KeywordSpotter.from_folder(tier="int8", backend="litert", backend_options={"litert": {"reference": True}})
    loaded = app.manager.store.load(app.manager.store.manifest.variant("int8", "litert"), reference=True)
    scale, zero = loaded.backend._outputs[0].quant
    fe = KwsFrontend()
    app_int8 = np.stack([np.round(loaded.run(model_input(fe(c), app.table))[0].ravel() / scale) + zero
                         for c in clips])
    assert np.array_equal(app_int8, got)
    assert got.argmax(1).tolist() == [int(np.argmax(app.probabilities(fe(c)))) for c in clips]
    assert app.manager.current == ("int8", "litert")
    loaded.close()
    app.close()


def test_cortex_m4_under_qemu_matches_python(exported, clips_and_python, need):
    from firmware_export.frontend import verify

    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    clips, expected, _ = clips_and_python
    res = verify.verify_model_qemu(exported, "speech_kws", clips, expected)
    assert res["ok"] and res["output"] == f"kws-model-verify: {len(clips)}/{len(clips)}", res
    wrong = expected.copy()
    wrong[0, 0] ^= 1  # a check that can fail: one flipped bit is caught
    bad = verify.verify_model_qemu(exported, "speech_kws", clips[:1], wrong[:1])
    assert not bad["ok"] and bad["output"] == "kws-model-verify: 0/1", bad
