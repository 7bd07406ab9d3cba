"""Sensor sources on real files and a real pseudo-terminal: CSV, WFDB, serial."""

from __future__ import annotations

import os
import pty
from pathlib import Path

import numpy as np
import pytest

from sdk.errors import SourceError
from sdk.sources import open_source
from sdk.sources.sensors import CsvSource, WfdbSource, parse_line


def test_csv_header_time_column_rate_and_gaps(tmp_path: Path) -> None:
    t = [i / 100 for i in range(10)] + [i / 100 for i in range(13, 20)]  # samples 10..12 missing
    rows = ["t,ecg,resp"] + [f"{x:.2f},{i},{-i}" for i, x in enumerate(t)]
    f = tmp_path / "s.csv"
    f.write_text("\n".join(rows) + "\n")
    with open_source(f"csv://{f}?block=5") as src:
        assert isinstance(src, CsvSource)
        items = list(src)
    assert src.meta["rate"] == pytest.approx(100.0) and src.meta["columns"] == ["ecg", "resp"]
    assert [i.data.shape for i in items] == [(5, 2), (5, 2), (5, 2), (2, 2)]
    assert items[0].data[:, 0].tolist() == [0, 1, 2, 3, 4] and items[0].data[:, 1].tolist() == [0, -1, -2, -3, -4]
    assert [i.meta["gap"] for i in items] == [0, 0, 3, 0]
    assert [i.meta["start"] for i in items] == [0, 5, 13, 18]  # stream positions count the missing samples
    assert items[2].meta["start_s"] == pytest.approx(0.13)
    assert src.stats.gaps == 1


def test_csv_headerless_columns_and_seq(tmp_path: Path) -> None:
    f = tmp_path / "n.csv"
    f.write_text("1;0.5;7\n2;0.6;7\n4;0.7;7\n")
    with open_source(str(f), rate=360, seq_col=0, columns="1") as src:
        items = list(src)
    assert [i.data[0, 0] for i in items] == pytest.approx([0.5, 0.6, 0.7])
    assert [i.meta["gap"] for i in items] == [0, 0, 1] and src.stats.gaps == 1
    assert src.meta["rate"] == 360 and src.meta["channels"] == 1


def test_csv_errors(tmp_path: Path, open_fds_to) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(SourceError, match="line 3 has a non-numeric value"):
        list(open_source(f"csv://{f}?rate=10"))
    with pytest.raises(SourceError, match="no column 'c'") as e:
        open_source(f"csv://{f}?rate=10&columns=c").open()
    assert "a, b" in e.value.hint
    with pytest.raises(SourceError, match="does not exist"):
        open_source(f"csv://{tmp_path}/none.csv")
    (tmp_path / "latin1.csv").write_bytes("t,\xe9cg\n".encode("latin-1"))
    with pytest.raises(SourceError, match="cannot read"):
        open_source(f"csv://{tmp_path}/latin1.csv").open()
    assert open_fds_to(f) == 0 and open_fds_to(tmp_path / "latin1.csv") == 0  # failed opens close the file


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    import wfdb

    folder = tmp_path_factory.mktemp("wfdb")
    t = np.arange(720) / 360
    signal = np.stack([np.sin(2 * np.pi * 1.2 * t), 0.5 * np.cos(2 * np.pi * 0.7 * t)], axis=1)
    wfdb.wrsamp("rec", fs=360, units=["mV", "mV"], sig_name=["MLII", "V5"], p_signal=signal,
                fmt=["16", "16"], write_dir=str(folder))
    return folder / "rec", signal


def test_wfdb_record_channel_and_blocks(record: tuple[Path, np.ndarray]) -> None:
    path, signal = record
    with open_source(f"wfdb://{path}?channel=V5&block=100") as src:
        assert isinstance(src, WfdbSource)
        items = list(src)
    assert src.meta["rate"] == 360 and src.meta["channel_names"] == ["V5"] and src.meta["units"] == ["mV"]
    assert [len(i.data) for i in items] == [100] * 7 + [20]
    np.testing.assert_allclose(np.concatenate([i.data for i in items])[:, 0], signal[:, 1], atol=1e-3)
    assert items[1].meta["start"] == 100 and items[1].meta["start_s"] == pytest.approx(100 / 360)
    with open_source(f"file://{path}.hea") as both:
        assert next(iter(both)).data.shape == (1, 2)


def test_wfdb_errors(record: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = record
    with pytest.raises(SourceError, match="no channel 'II'") as e:
        open_source(f"wfdb://{path}?channel=II").open()
    assert "MLII, V5" in e.value.hint
    with pytest.raises(SourceError, match="no WFDB header"):
        open_source(f"wfdb://{tmp_path}/missing")


def test_wfdb_mitbih_reference_record(shared_data: Path) -> None:
    rec = shared_data / "mitbih" / "101"
    with open_source(f"wfdb://{rec}?channel=MLII&block=360") as src:
        first = next(iter(src))
        samples, symbols = src.annotations()
    assert src.meta["rate"] == 360 and first.data.shape == (360, 1)
    assert src.meta["samples"] == 650000 and len(samples) == len(symbols) > 1000
    assert -5 < float(first.data.mean()) < 5  # millivolts


# ---- serial over a real pseudo-terminal -------------------------------------------------------------
@pytest.fixture
def pty_pair():  # type: ignore[no-untyped-def]
    master, slave = pty.openpty()
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_serial_lines_blocks_gaps_and_malformed(pty_pair) -> None:  # type: ignore[no-untyped-def]
    master, path = pty_pair
    src = open_source(f"serial://{path}?baud=115200&format=csv&block=2&seq_col=0&rate=50", retries=0)
    with src:
        assert src.meta["live"] is True and src.meta["kind"] == "serial"
        os.write(master, b"1,10\n2,11\nbad line\n3,12\n6,1")
        os.write(master, b"3\n7,14\n8,15\n")  # a line split across writes
        it = iter(src)
        items = [next(it) for _ in range(3)]
    assert [i.data[:, 0].tolist() for i in items] == [[10, 11], [12, 13], [14, 15]]
    assert [i.meta["gap"] for i in items] == [0, 2, 0]
    assert [i.meta["start"] for i in items] == [0, 2, 6]
    assert src.stats.gaps == 1 and src.stats.malformed == 1 and src.meta["channels"] == 1
    assert not src.grabbing


def test_serial_json_and_unplug(pty_pair) -> None:  # type: ignore[no-untyped-def]
    master, path = pty_pair
    src = open_source(f"serial://{path}?format=json", retries=0, backoff=0.01)
    src.open()
    os.write(master, b'{"ax": 1.5, "ay": -2}\n')
    it = iter(src)
    assert next(it).data.tolist() == [[1.5, -2.0]]
    os.close(master)  # unplugged: reads fail, the port vanishes, retries=0 gives up
    with pytest.raises(SourceError, match="not back after 0 reconnect tries|no serial port"):
        next(it)
    src.close()
    assert not src.grabbing


def test_serial_missing_port() -> None:
    with pytest.raises(SourceError, match="no serial port /dev/ttyUSB77"):
        open_source("serial:///dev/ttyUSB77").open()


def test_parse_line_formats() -> None:
    assert parse_line("1, 2.5 ;3\t4") == [1.0, 2.5, 3.0, 4.0]
    assert parse_line("[1, 2]", "json") == [1.0, 2.0]
    with pytest.raises(ValueError):
        parse_line("a,b")
