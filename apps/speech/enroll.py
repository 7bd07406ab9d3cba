"""Custom keywords from a few examples: ``ember speech enroll --word marco --examples clips/``.

The shipped network without its last layer is an embedding (the pooled features before the
classifier). A new word is the normalised mean embedding of its examples (a prototype); a window's
score is its cosine similarity to the prototype (embeddings centred on the negatives' mean). The
threshold is the similarity that only 0.5 % of the windows of the shipped negatives reach (unknown
words and noise, ``negatives.npz`` in the base model folder, slid across each other like a stream).
The result is a model folder (embedding tiers via ``sdk.optimize`` + ``speech.json``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from apps.speech.data import AUDIO_EXT, CLIP, fit, read_audio
from apps.speech.spotter import MODEL_DIR, SETTINGS_FILE, input_table, load_settings
from sdk.errors import ConfigError, ModelError
from sdk.features.kws import KwsFrontend

NEGATIVES = "negatives.npz"
SLOPE = 25.0  # logistic slope on cosine similarity: p goes 0.08 -> 0.92 over +-0.1 around the threshold
MIN_EXAMPLES = 3
NEG_PASS = 0.005  # share of the shipped negative windows allowed above the threshold


def embedding_model(base: Path, out: Path) -> Path:
    """The base fp32 ONNX model cut before its final Gemm/MatMul: outputs the pooled embedding."""
    import onnx
    from onnx.utils import Extractor

    from sdk.models.manifest import Manifest

    m = Manifest.load(base)
    v = next((v for v in m.variants if v.tier == "fp32" and v.backend == "onnxruntime"), None)
    if v is None:
        raise ModelError(f"{base}: no fp32/onnxruntime variant to take the embedding from")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(base / v.file)))
    last = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul")]
    if not last:
        raise ModelError(f"{base / v.file}: no final Gemm/MatMul layer; cannot cut an embedding")
    sub = Extractor(model).extract_model([model.graph.input[0].name], [last[-1].input[0]])
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(sub, str(out))
    return out


def _inputs(feats: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[np.asarray(feats, np.uint8)][:, None]


def unit(e: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Embeddings centred on the negatives' mean and scaled to unit length (rows)."""
    c = np.asarray(e, np.float32).reshape(len(e), -1) - mean
    return c / (np.linalg.norm(c, axis=1, keepdims=True) + 1e-9)


def example_features(folder: Path) -> np.ndarray:
    """Features of each example (centred 1 s) and of copies shifted by +-100 ms."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXT) if folder.is_dir() else []
    if len(files) < MIN_EXAMPLES:
        raise ConfigError(f"{folder}: found {len(files)} recordings (WAV/FLAC); give at least {MIN_EXAMPLES}, "
                          "better 5-10, of the word alone, about 1 s each")
    fe = KwsFrontend()
    out = []
    for f in files:
        pcm = fit(read_audio(f), CLIP)
        out += [fe(np.roll(pcm, s)) for s in (0, -1600, 1600)]
    return np.stack(out)


def negative_windows(feats: np.ndarray, hop: int = 10) -> np.ndarray:
    """Windows slid every ``hop`` frames over the negatives laid end to end (a stream of features)."""
    seq = feats.reshape(-1, feats.shape[-1])
    n = feats.shape[1]
    return np.stack([seq[i:i + n] for i in range(0, len(seq) - n + 1, hop)])


def choose_threshold(pos: np.ndarray, neg: np.ndarray, copies: int = 3) -> dict[str, Any]:
    """Prototype and threshold from unit embeddings of the examples ``pos`` (``copies`` per recording) and
    of the negative windows ``neg``: the similarity that only ``NEG_PASS`` of the negative windows reach."""
    proto = pos.mean(0) / (np.linalg.norm(pos.mean(0)) + 1e-9)
    groups = np.arange(len(pos)) // copies
    loo = []
    for g in np.unique(groups):
        rest = pos[groups != g].mean(0)
        loo.append(float(np.max(pos[groups == g] @ (rest / (np.linalg.norm(rest) + 1e-9)))))
    sims = neg @ proto
    centre = float(np.quantile(sims, 1 - NEG_PASS))
    return {"prototype": proto, "centre": centre, "negatives_max_similarity": float(sims.max()),
            "examples_loo_similarity": float(np.median(loo)),
            "examples_passing": float(np.mean(np.array(loo) >= centre))}


def enroll(word: str, examples: Path, out: Path, base: str | Path | None = None) -> dict[str, Any]:
    """Write a model folder at ``out`` that detects ``word``; returns the enrolment summary."""
    from sdk.optimize import optimize

    if not word or not word.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"--word {word!r}: use letters, digits, '-' or '_'")
    base_dir = Path(base) if base else MODEL_DIR
    base_meta = load_settings(base_dir)
    if not (base_dir / NEGATIVES).is_file():
        raise ModelError(f"{base_dir}: no {NEGATIVES} (negative clips for the threshold); use the shipped model")
    pos_feats = example_features(examples)
    with np.load(base_dir / NEGATIVES) as z:
        neg_feats = negative_windows(z["x"])
    work = out / ".enroll"
    emb_path = embedding_model(base_dir, work / "embedding.onnx")
    table = input_table(base_meta)
    raw_pos, raw_neg = _raw(emb_path, _inputs(pos_feats, table)), _raw(emb_path, _inputs(neg_feats, table))
    mean = raw_neg.mean(0)
    choice = choose_threshold(unit(raw_pos, mean), unit(raw_neg, mean))
    x = _inputs(np.concatenate([pos_feats, neg_feats[::4]]), table)
    optimize(emb_path, calib=(x, None), evalset=(x, _raw(emb_path, x)), out=out, task="regression",
             name=f"speech-{word}", labels=[word, "unknown"], tiers=("fp32/onnxruntime", "int8/onnxruntime"),
             report=False)
    meta = {"kind": "enrolled", "word": word, "labels": [word, "unknown"], "frontend": base_meta.get("frontend", {}),
            "input_quantization": base_meta.get("input_quantization"),
            "mean": mean.round(6).tolist(), "prototype": choice["prototype"].round(6).tolist(),
            "centre": round(choice["centre"], 6), "slope": SLOPE,
            "stream": {**base_meta.get("stream", {}), "threshold": 0.5, "smooth": 1},
            "base_model": str(base_dir), "examples": len(pos_feats) // 3}
    (out / SETTINGS_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return {"word": word, "model": str(out), "examples": meta["examples"],
            "threshold_similarity": round(choice["centre"], 4),
            "negatives_max_similarity": round(choice["negatives_max_similarity"], 4),
            "examples_loo_similarity": round(choice["examples_loo_similarity"], 4),
            "examples_passing_loo": round(choice["examples_passing"], 3), "negative_windows": len(raw_neg),
            "negative_windows_passing": NEG_PASS}


def _raw(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: s[None]})[0] for s in x]).astype(np.float32)
