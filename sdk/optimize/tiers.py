"""Build each precision tier of a model into a folder. One failing tier never stops the others:
every build returns a :class:`TierResult` with ``status`` ``ok``, ``skipped`` or ``failed``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdk.errors import EmberError
from sdk.optimize.data import Dataset
from sdk.optimize.quantize import dynamic_fits, op_census, quantize_dynamic_int8, quantize_static_int8
from sdk.vocab import FILE_SUFFIX, PRECISIONS, Backend, Precision

# what `ember optimize` can build, per backend (names from sdk.vocab)
BUILDS: dict[str, tuple[str, ...]] = {Backend.ONNXRUNTIME.value: PRECISIONS,
                                      Backend.LITERT.value: (Precision.FP32.value, Precision.INT8.value,
                                                             Precision.INT8_MIXED.value)}
ONNX_TIERS = BUILDS["onnxruntime"]
LITERT_TIERS = BUILDS["litert"]
ALL_TIERS = tuple(f"{t}/{b}" for b, tiers in BUILDS.items() for t in tiers)


@dataclass
class TierResult:
    tier: str
    backend: str
    file: str | None = None
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    size_bytes: int | None = None
    score: float | None = None
    drop_pts: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    peak_mem_bytes: int | None = None
    energy_mj: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.tier}/{self.backend}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_name(tier: str, backend: str) -> str:
    return f"model.{tier}{FILE_SUFFIX[backend]}"


def build_tier(key: str, fp32: Path, folder: Path, build: Callable[[Path], dict[str, Any] | None]) -> TierResult:
    """Run ``build(dst)``; errors become a failed result naming the tier (never raised)."""
    tier, backend = key.split("/")
    dst = folder / file_name(tier, backend)
    res = TierResult(tier, backend, dst.name)
    try:
        extra = build(dst)
        res.extra.update(extra or {})
        res.size_bytes = dst.stat().st_size
    except SkipTier as e:
        res.status, res.reason, res.file = "skipped", str(e), None
    except (EmberError, OSError, ValueError, RuntimeError) as e:
        res.status, res.reason, res.file = "failed", f"{type(e).__name__}: {e}", None
        dst.unlink(missing_ok=True)
    return res


class SkipTier(Exception):
    """A tier that does not fit this model (the reason says why)."""


def fp32_builder(src: Path) -> Callable[[Path], None]:
    def build(dst: Path) -> None:
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
    return build


def fp16_builder(src: Path, calib: Dataset | None = None) -> Callable[[Path], dict[str, Any]]:
    """fp16 with fp32 inputs/outputs; with ``calib``, the nodes whose values leave fp16's range on it
    (:func:`sdk.optimize.ranges.fp16_unsafe_nodes`) stay float32."""
    from sdk.models.variants import make_fp16
    from sdk.optimize.ranges import fp16_unsafe_nodes

    def build(dst: Path) -> dict[str, Any]:
        keep = fp16_unsafe_nodes(src, calib) if calib is not None else []
        try:
            make_fp16(src, dst, keep)
        except EmberError:
            raise
        except Exception as e:  # noqa: BLE001 - onnxconverter-common raises bare exceptions
            raise RuntimeError(f"fp16 conversion failed: {str(e).splitlines()[0][:300]}") from None
        return {"float32_nodes": keep} if keep else {}
    return build


def int8_builder(src: Path, calib: Dataset, method: str, limit: int | None,
                 cache: Path | None = None) -> Callable[[Path], dict[str, Any]]:
    def build(dst: Path) -> dict[str, Any]:
        quantize_static_int8(src, dst, calib.samples(limit), method=method, cache=cache)
        return {"calibration": method, "calibration_samples": min(len(calib), limit or len(calib))}
    return build


def dynamic_builder(src: Path) -> Callable[[Path], dict[str, Any]]:
    def build(dst: Path) -> dict[str, Any]:
        census = op_census(src)
        if not dynamic_fits(census):
            dyn = {o: census[o] for o in ("MatMul", "Gemm", "LSTM", "GRU") if census[o]}
            raise SkipTier(f"op census: {census['Conv']} Conv vs {dyn or 'no'} MatMul/Gemm/RNN nodes; dynamic "
                           "int8 only pays off for MatMul/RNN-heavy models (static int8 covers conv nets)")
        quantize_dynamic_int8(src, dst)
        return {}
    return build


def tflite_builder(src: Path, calib: Dataset | None, limit: int | None,
                   float_layers: list[str] | None = None) -> Callable[[Path], dict[str, Any]]:
    """LiteRT fp32 (``calib`` None), full int8, or int8 with ``float_layers`` (and the ops after
    each up to the next weighted layer) kept in float: int8-mixed, from the ONNX mixed search."""
    from sdk.optimize.quantize import float_region
    from sdk.optimize.tflite_export import onnx_to_tflite

    def build(dst: Path) -> dict[str, Any]:
        if float_layers is not None and not float_layers:
            raise SkipTier("the mixed-precision search kept no layer in float (see int8-mixed/onnxruntime)")
        onnx_to_tflite(src, dst, int8=calib is not None,
                       calibration=calib.samples(limit) if calib is not None else None,
                       float_nodes=float_region(src, float_layers) if float_layers else ())
        return {"layout": "NHWC", **({"excluded_nodes": float_layers} if float_layers else {})}
    return build
