"""Synthetic sources for demos and tests, all seeded and file-like (``live`` False):

* ``synthetic://ecg?hr=72&rate=360&ectopic=0.1&block=36`` — ECG blocks [block, 1] in mV;
  ``source.annotations()`` gives the beats delivered so far (see ``sdk.sources.ecg``).
* ``synthetic://video?pattern=box&width=320&height=240&fps=30`` — BGR frames; patterns ``box``
  (a bouncing square, its ground-truth box in ``meta["box"]``), ``bars``, ``noise``.
* ``synthetic://tone?freq=440&rate=16000&chunk_ms=1000`` — audio chunks [samples, 1].

``duration=`` (seconds) or ``frames=`` bounds a stream (default: endless); ``realtime=true`` paces it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from sdk.errors import SourceError
from sdk.sources.audio import Shaper
from sdk.sources.base import BaseSource
from sdk.sources.blocks import Entry
from sdk.sources.common import Pacer
from sdk.sources.ecg import EcgGenerator
from sdk.sources.uri import bounded, optional, options, parse_uri

_UNIT = bounded(float, 0.0, 1.0)
_LEVEL = bounded(float, 0.0, 100.0)
COMMON = {"seed": (bounded(int, 0, 2**63 - 1), 0), "realtime": (bool, False),
          "duration": (optional(bounded(float, 0.0, 1e7)), None)}
SPECS: dict[str, dict[str, Any]] = {
    "ecg": {**COMMON, "rate": (bounded(float, 1.0, 100_000.0), 360.0), "hr": (bounded(float, 1.0, 1000.0), 72.0),
            "hrv": (_UNIT, 0.03), "ectopic": (_UNIT, 0.0), "atrial": (_UNIT, 0.0), "noise": (_LEVEL, 0.01),
            "wander": (_LEVEL, 0.05), "mains": (_LEVEL, 0.0), "block": (bounded(int, 1, 1_000_000), 36)},
    "video": {**COMMON, "pattern": (str, "box"), "width": (bounded(int, 1, 4096), 320),
              "height": (bounded(int, 1, 4096), 240), "fps": (bounded(float, 0.01, 1000.0), 30.0),
              "frames": (optional(bounded(int, 0, 1_000_000_000)), None), "size": (bounded(int, 1, 4096), 48)},
    "tone": {**COMMON, "freq": (bounded(float, 0.0, 384_000.0), 440.0), "rate": (bounded(int, 1000, 768_000), 16000),
             "amplitude": (_LEVEL, 0.5), "noise": (_LEVEL, 0.0), "chunk_ms": (bounded(float, 1.0, 60_000.0), 1000.0),
             "hop_ms": (optional(bounded(float, 1.0, 60_000.0)), None)},
}
PATTERNS = ("box", "bars", "noise")


class SyntheticEcgSource(BaseSource):
    kind = "synthetic-ecg"

    def __init__(self, uri: str, opts: Mapping[str, Any]) -> None:
        super().__init__(uri, live=False, rate=opts["rate"], channels=1, block=opts["block"],
                         shape=(opts["block"], 1), units=["mV"])
        self.opts = dict(opts)
        self._gen: EcgGenerator | None = None

    def _open(self) -> None:
        o = self.opts
        try:
            self._gen = EcgGenerator(o["rate"], o["hr"], o["hrv"], o["ectopic"], o["atrial"], o["noise"],
                                     o["wander"], o["mains"], seed=o["seed"])
        except ValueError as e:
            raise SourceError(self.uri, str(e), "fix the option") from None

    def annotations(self) -> tuple[np.ndarray, list[str]]:
        """(R-peak sample indices, symbols) of the beats in the samples delivered so far."""
        return self._gen.annotations() if self._gen else (np.zeros(0, np.int64), [])

    def _items(self) -> Iterator[Entry]:
        gen, block, rate = self._gen, self.opts["block"], self.opts["rate"]
        assert gen is not None
        total = None if self.opts["duration"] is None else round(self.opts["duration"] * rate)
        pacer = Pacer(rate / block, self.opts["realtime"], self._closed)
        while total is None or gen.position < total:
            start = gen.position
            n = block if total is None else min(block, total - start)
            data = gen.render(n)[:, None]
            pacer.wait()
            yield data, None, {"start": start, "start_s": start / rate, "gap": 0}


class SyntheticVideoSource(BaseSource):
    kind = "synthetic-video"

    def __init__(self, uri: str, opts: Mapping[str, Any]) -> None:
        if opts["pattern"] not in PATTERNS:
            raise SourceError(uri, f"unknown pattern {opts['pattern']!r}", f"use one of {', '.join(PATTERNS)}")
        frames = opts["frames"]
        if frames is None and opts["duration"] is not None:
            frames = round(opts["duration"] * opts["fps"])
        super().__init__(uri, live=False, fps=opts["fps"], frames=frames,
                         shape=(opts["height"], opts["width"], 3))
        self.opts, self.frames = dict(opts), frames

    def _open(self) -> None:
        self._rng = np.random.default_rng(self.opts["seed"])

    def _frame(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        h, w, o = self.opts["height"], self.opts["width"], self.opts
        if o["pattern"] == "noise":
            return self._rng.integers(0, 256, (h, w, 3), dtype=np.uint8), {}
        img = np.full((h, w, 3), 40, np.uint8)
        if o["pattern"] == "bars":
            colors = np.array([[255, 255, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0],
                               [255, 0, 255], [0, 0, 255], [255, 0, 0], [0, 0, 0]], np.uint8)
            cols = (np.arange(w) * len(colors) // w + i) % len(colors)
            img[:] = colors[cols][None, :, :]
            return img, {}
        s = min(o["size"], h, w)
        x = _bounce(i * 3.0, w - s)
        y = _bounce(i * 2.0, h - s)
        img[y:y + s, x:x + s] = (0, 0, 255)
        return img, {"box": (x, y, s, s)}

    def _items(self) -> Iterator[Entry]:
        fps = self.opts["fps"]
        pacer = Pacer(fps, self.opts["realtime"], self._closed)
        i = 0
        while self.frames is None or i < self.frames:
            frame, extra = self._frame(i)
            pacer.wait()
            yield frame, None, {"frame": i, "pts": i / fps, **extra}
            i += 1


def _bounce(pos: float, span: int) -> int:
    if span <= 0:
        return 0
    p = int(pos) % (2 * span)
    return p if p <= span else 2 * span - p


class SyntheticToneSource(BaseSource):
    kind = "synthetic-tone"

    def __init__(self, uri: str, opts: Mapping[str, Any]) -> None:
        super().__init__(uri, live=False)
        self.opts = dict(opts)
        shaper_opts = {"rate": opts["rate"], "channels": 1, "chunk_ms": opts["chunk_ms"],
                       "hop_ms": opts["hop_ms"], "resample": None}
        self._shaper_opts = shaper_opts
        self._meta.update(Shaper(uri, opts["rate"], 1, shaper_opts).meta)

    def _open(self) -> None:
        self._rng = np.random.default_rng(self.opts["seed"])

    def _items(self) -> Iterator[Entry]:
        o, rate = self.opts, self.opts["rate"]
        shaper = Shaper(self.uri, rate, 1, self._shaper_opts)
        total = None if o["duration"] is None else round(o["duration"] * rate)
        pacer = Pacer(rate / shaper.hop, o["realtime"], self._closed)
        pos, block = 0, max(1, rate // 10)
        while total is None or pos < total:
            n = block if total is None else min(block, total - pos)
            t = (pos + np.arange(n)) / rate
            x = o["amplitude"] * np.sin(2 * math.pi * o["freq"] * t)
            if o["noise"]:
                x = x + o["noise"] * self._rng.standard_normal(n)
            pos += n
            for chunk, start in shaper.feed(x.astype(np.float32)):
                pacer.wait()
                yield shaper.entry(chunk, start, None)
        for chunk, start, padded in shaper.finish(True):
            yield shaper.entry(chunk, start, None, padded)


_KINDS = {"ecg": SyntheticEcgSource, "video": SyntheticVideoSource, "tone": SyntheticToneSource}


def open_synthetic(uri: str, **kwargs: Any) -> BaseSource:
    """``open_source`` factory for ``synthetic://ecg``, ``synthetic://video`` and ``synthetic://tone``."""
    parsed = parse_uri(uri)
    kind = parsed.target.strip("/")
    if kind not in _KINDS:
        raise SourceError(uri, f"unknown synthetic kind {kind!r}", f"use one of: {', '.join(_KINDS)}")
    return _KINDS[kind](uri, options(parsed, kwargs, SPECS[kind]))
