"""Sensors: ``serial:///dev/ttyUSB0?baud=115200&format=csv``, ``csv://file.csv?rate=360`` and
``wfdb://path/to/record?channel=MLII``.

Items are float32 blocks [block, channels] of fixed-rate samples; meta adds ``start`` (sample
index), ``start_s`` and ``gap`` (samples missing just before or inside the block).
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import SourceError
from sdk.sources.base import BaseSource
from sdk.sources.blocks import BLOCK_OPTIONS, Blocker, Entry, GapDetector, paced_blocks
from sdk.sources.common import Pacer, require_path
from sdk.sources.live import LIVE_OPTIONS, Disconnected, LiveSource, stamp
from sdk.sources.uri import ParsedUri, bounded, options, parse_uri

_SPLIT = re.compile(r"[,;\s]+")
SERIAL_FORMATS = ("csv", "json")


def parse_line(line: str, fmt: str = "csv") -> list[float]:
    """Numbers from one text line: ``1,2.5,3`` (commas, semicolons or spaces) or JSON ``[1, 2]`` /
    ``{"a": 1}``. Raises ValueError for anything else."""
    text = line.strip()
    if fmt == "json":
        value = json.loads(text)
        items = list(value.values()) if isinstance(value, dict) else value
        if not isinstance(items, list):
            items = [items]
        return [float(v) for v in items]
    return [float(v) for v in _SPLIT.split(text) if v]


# ---- serial ---------------------------------------------------------------------------------------
class SerialSource(LiveSource):
    """Text lines from a serial port, one sample per line, grouped into blocks."""

    kind = "serial"

    def __init__(self, uri: str, port: str, opts: Mapping[str, Any], live: Mapping[str, Any]) -> None:
        super().__init__(uri, port=port, rate=opts["rate"], block=opts["block"], baud=opts["baud"], **live)
        self.port, self.opts = port, dict(opts)
        self._gaps = GapDetector(opts["seq_col"], opts["time_col"], opts["rate"], opts["time_scale"])
        self._blocker = Blocker(opts["block"], self.stats, opts["rate"])
        self._partial = b""

    def _connect(self) -> Any:
        import serial

        if not Path(self.port).exists() and not self.port.startswith(("socket://", "loop://", "rfc2217://")):
            raise SourceError(self.uri, f"no serial port {self.port}",
                              "plug the device in; `ember devices` lists serial ports")
        try:
            return serial.serial_for_url(self.port, baudrate=self.opts["baud"], timeout=0.2)
        except (serial.SerialException, ValueError) as e:
            raise SourceError(self.uri, f"cannot open {self.port}: {e}",
                              "check permissions (group dialout) and that no other program uses it") from None

    def _grab(self, conn: Any) -> Entry | None:
        raw = conn.readline()
        if not raw:
            if not conn.is_open:
                raise Disconnected("port closed")
            return None
        if not raw.endswith(b"\n"):  # timed out inside a line: keep the part for the next read
            self._partial += raw
            return None
        raw, self._partial = self._partial + raw, b""
        ts = stamp()
        try:
            row = parse_line(raw.decode("utf-8", errors="strict"), self.opts["format"])
            if not row:
                return None
            values, missing = self._gaps.split(row)
        except (ValueError, IndexError, UnicodeDecodeError):
            self.stats.malformed += 1
            return None
        entry = self._blocker.add(values, missing)
        if entry is None:
            return None
        self._meta.setdefault("channels", entry[0].shape[1])
        return entry[0], ts, entry[2]

    def _release(self, conn: Any) -> None:
        self._partial = b""
        conn.close()


def open_serial(uri: str, **kwargs: Any) -> SerialSource:
    """``open_source`` factory for ``serial:///dev/ttyUSB0?baud=115200&format=csv&block=36``."""
    parsed = parse_uri(uri)
    spec = {**BLOCK_OPTIONS, **LIVE_OPTIONS, "baud": (bounded(int, 50, 16_000_000), 115200),
            "format": (str, "csv"), "buffer": (bounded(int, 1, 1_000_000), 256)}
    spec.pop("realtime")
    opts = options(parsed, kwargs, spec)
    if opts["format"] not in SERIAL_FORMATS:
        raise SourceError(uri, f"unsupported serial format {opts['format']!r}", f"use one of {SERIAL_FORMATS}")
    live = {k: opts.pop(k) for k in LIVE_OPTIONS}
    return SerialSource(uri, parsed.target, opts, live)


# ---- CSV ------------------------------------------------------------------------------------------
TIME_NAMES = ("t", "time", "timestamp", "time_s", "seconds", "elapsed")
SEQ_NAMES = ("seq", "sequence", "sample", "sample_index")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


class CsvSource(BaseSource):
    """Rows of a CSV file (optional header) as sample blocks; ``columns=`` picks names or indices."""

    kind = "csv"

    def __init__(self, uri: str, path: Path, opts: Mapping[str, Any]) -> None:
        super().__init__(uri, live=False, path=str(path), block=opts["block"])
        self.path, self.opts = path, dict(opts)
        self._file: Any = None

    def _open(self) -> None:
        try:
            f = open(self.path, newline="", encoding="utf-8")  # noqa: SIM115 - closed in _close
        except OSError as e:
            raise SourceError(self.uri, f"cannot read {self.path}: {e}", "give a UTF-8 text CSV file") from None
        try:
            self._start(f)
        except BaseException:  # a bad header, column or first rows: the source is not open, close the file
            f.close()
            self._file = None
            raise

    def _start(self, f: Any) -> None:
        try:
            first = f.readline()
        except (OSError, UnicodeDecodeError) as e:
            raise SourceError(self.uri, f"cannot read {self.path}: {e}", "give a UTF-8 text CSV file") from None
        delimiter = "\t" if "\t" in first else ";" if ";" in first else ","
        cells = next(csv.reader([first], delimiter=delimiter), [])
        if not cells:
            raise SourceError(self.uri, f"{self.path} is empty", "give a CSV with one sample per row")
        header = None if all(_is_number(c) for c in cells) else [c.strip() for c in cells]
        if header is None:
            f.seek(0)
        self._line0 = 0 if header is None else 1
        self._file, self._reader = f, csv.reader(f, delimiter=delimiter)
        self._setup(header, len(cells))

    def _setup(self, header: list[str] | None, width: int) -> None:
        opts, names = self.opts, header or [str(i) for i in range(width)]
        lower = [n.lower() for n in names]
        if opts["time_col"] is None and header:
            opts["time_col"] = next((i for i, n in enumerate(lower) if n in TIME_NAMES), None)
        if opts["seq_col"] is None and header:
            opts["seq_col"] = next((i for i, n in enumerate(lower) if n in SEQ_NAMES), None)
        skip = {opts["time_col"], opts["seq_col"]}
        self._cols = [self._column(c, names) for c in opts["columns"].split(",")] if opts["columns"] else \
            [i for i in range(width) if i not in skip]
        self._peek = [self._row(r) for _, r in zip(range(64), self._reader) if r]
        if not opts["rate"] and opts["time_col"] is not None and len(self._peek) > 1:
            t = np.array([r[opts["time_col"]] for r in self._peek]) * opts["time_scale"]
            step = float(np.median(np.diff(t)))
            opts["rate"] = 1.0 / step if step > 0 else None
        self._meta.update(rate=opts["rate"], channels=len(self._cols),
                          columns=[names[c] for c in self._cols])

    def _column(self, key: str, names: list[str]) -> int:
        key = key.strip()
        if key in names:
            return names.index(key)
        if key.isdigit() and int(key) < len(names):
            return int(key)
        raise SourceError(self.uri, f"no column {key!r}", f"columns are: {', '.join(names)}")

    def _row(self, cells: list[str]) -> list[float]:
        try:
            return [float(c) for c in cells]
        except ValueError:
            raise SourceError(self.uri, f"line {self._reader.line_num + self._line0} has a non-numeric value: {cells}",
                              "fix the file; only the first line may be a header") from None

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _items(self) -> Iterator[Entry]:
        opts = self.opts
        gaps = GapDetector(opts["seq_col"], opts["time_col"], opts["rate"], opts["time_scale"])
        blocker = Blocker(opts["block"], self.stats, opts["rate"])
        pacer = Pacer((opts["rate"] or 0) / blocker.block, opts["realtime"], self._closed)
        rows = itertools.chain(self._peek, (self._row(r) for r in self._reader if r))
        for row in rows:
            if self._closed.is_set():
                return
            if len(row) <= max(self._cols):
                raise SourceError(self.uri, f"a row has {len(row)} values, fewer than the header",
                                  "fix the file (every row needs all columns)")
            _, missing = gaps.split(row)
            entry = blocker.add([row[c] for c in self._cols], missing)
            if entry is not None:
                pacer.wait()
                yield entry
        last = blocker.take()
        if last is not None:
            yield last


def open_csv(uri: str, **kwargs: Any) -> CsvSource:
    """``open_source`` factory for ``csv://file.csv?rate=360&columns=MLII&block=36``."""
    return csv_from(parse_uri(uri), kwargs)


def csv_from(parsed: ParsedUri, kwargs: Mapping[str, Any]) -> CsvSource:
    opts = options(parsed, kwargs, {**BLOCK_OPTIONS, "columns": (str, "")})
    return CsvSource(parsed.uri, require_path(parsed.uri, parsed.target), opts)


# ---- WFDB (PhysioNet records) ---------------------------------------------------------------------
class WfdbSource(BaseSource):
    """A PhysioNet WFDB record (``.hea`` + ``.dat``), read once and delivered in blocks."""

    kind = "wfdb"

    def __init__(self, uri: str, record: str, opts: Mapping[str, Any]) -> None:
        super().__init__(uri, live=False, record=record, block=opts["block"])
        self.record, self.opts = record, dict(opts)

    def _open(self) -> None:
        import wfdb

        names = [c.strip() for c in self.opts["channel"].split(",")] if self.opts["channel"] else None
        try:
            header = wfdb.rdheader(self.record)
            if names:
                missing = [n for n in names if n not in header.sig_name and not n.isdigit()]
                if missing:
                    raise SourceError(self.uri, f"record has no channel {missing[0]!r}",
                                      f"channels are: {', '.join(header.sig_name)}")
                idx = [int(n) if n.isdigit() else header.sig_name.index(n) for n in names]
            else:
                idx = list(range(header.n_sig))
            rec = wfdb.rdrecord(self.record, channels=idx, physical=True)
        except SourceError:
            raise
        except (OSError, ValueError, IndexError) as e:
            raise SourceError(self.uri, f"cannot read WFDB record {self.record}: {e}",
                              "give the record path without extension (path/100 for 100.hea + 100.dat)") from None
        self._signal = np.asarray(rec.p_signal, dtype=np.float32)
        self._meta.update(rate=float(rec.fs), channels=len(idx), channel_names=list(rec.sig_name),
                          units=list(rec.units), samples=int(rec.sig_len))

    def annotations(self, extension: str = "atr") -> tuple[np.ndarray, list[str]]:
        """The record's beat annotations: (sample indices, symbols) from ``<record>.<extension>``."""
        import wfdb

        try:
            ann = wfdb.rdann(self.record, extension)
        except (OSError, ValueError) as e:
            raise SourceError(self.uri, f"no annotations {self.record}.{extension}: {e}",
                              "annotation files sit next to the record (e.g. 100.atr)") from None
        return np.asarray(ann.sample), list(ann.symbol)

    def _items(self) -> Iterator[Entry]:
        yield from paced_blocks(self._signal, self.opts["block"], self._meta["rate"], self.opts["realtime"],
                                self._closed)


def open_wfdb(uri: str, **kwargs: Any) -> WfdbSource:
    """``open_source`` factory for ``wfdb://path/to/record?channel=MLII&block=360``."""
    return wfdb_from(parse_uri(uri), kwargs)


def wfdb_from(parsed: ParsedUri, kwargs: Mapping[str, Any]) -> WfdbSource:
    spec = {"block": BLOCK_OPTIONS["block"], "realtime": BLOCK_OPTIONS["realtime"], "channel": (str, "")}
    opts = options(parsed, kwargs, spec)
    record = re.sub(r"\.(hea|dat)$", "", parsed.target)
    if not Path(record + ".hea").is_file():
        raise SourceError(parsed.uri, f"no WFDB header {record}.hea",
                          "give the record path without extension, e.g. wfdb://data/mitbih/100")
    return WfdbSource(parsed.uri, record, opts)
