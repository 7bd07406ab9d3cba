"""``ember probe URI``: open a source, print its items and stats (a quick check of a camera/mic/file)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from sdk.util.jsonutil import dumps


def register(sub: Any) -> None:
    p = sub.add_parser(
        "probe", help="open a source URI and print its items and stats",
        description="Open a source (e.g. v4l2:///dev/video0, mic://default, file://clip.mp4, "
        "serial:///dev/ttyUSB0?baud=115200, synthetic://ecg?hr=72) and print each item's "
        "sequence number, shape, dtype and value range, then the source's meta, stats and item rate. "
        "Exit status 1 when frames of a file could not be decoded (stats decode_errors).")
    p.add_argument("uri", help="source URI; options go in the query string (?rate=16000&chunk_ms=500)")
    p.add_argument("-n", "--count", type=int, default=10, help="items to read (default 10; 0 = until the end)")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra source option (repeatable), same as ?KEY=VALUE in the URI")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_probe)


def _summary(item: Any) -> str:
    data = item.data
    if isinstance(data, np.ndarray) and data.size:
        stats = f"{data.dtype} {tuple(data.shape)} min {data.min():.4g} max {data.max():.4g}"
    else:
        stats = type(data).__name__
    extra = {k: v for k, v in item.meta.items() if k in ("frame", "pts", "start_s", "gap", "padded", "box")}
    return f"#{item.seq:<5} t={item.timestamp:.3f} {stats} {extra if extra else ''}".rstrip()


def _probe(args: argparse.Namespace, config: Any) -> int:
    from sdk.errors import ConfigError
    from sdk.sources import open_source

    opts = {}
    for text in args.option:
        key, sep, value = text.partition("=")
        if not sep:
            raise ConfigError(f"--option {text!r}: write KEY=VALUE")
        opts[key.strip()] = value
    count, n = args.count, 0
    with open_source(args.uri, **opts) as src:
        t0 = time.monotonic()
        for item in src:
            n += 1
            if not args.quiet and not args.json:
                print(_summary(item))
            if count and n >= count:
                break
        elapsed = time.monotonic() - t0
        summary = {"uri": args.uri, "items": n, "seconds": round(elapsed, 4),
                   "items_per_s": round(n / elapsed, 2) if elapsed > 0 else None,
                   "meta": dict(src.meta), "stats": src.stats.as_dict()}
    if args.json:
        print(dumps(summary))
    else:
        print(f"{n} items in {elapsed:.3f} s ({summary['items_per_s']} items/s)")
        print("meta:  " + ", ".join(f"{k}={v}" for k, v in summary["meta"].items()))
        print("stats: " + ", ".join(f"{k}={v}" for k, v in summary["stats"].items()))
    lost = summary["stats"].get("decode_errors", 0)
    if lost:
        print(f"ember probe: warning: {lost} frame(s) could not be decoded and were skipped (the file is "
              "damaged; re-encode or replace it)", file=sys.stderr)
        return 1
    return 0
