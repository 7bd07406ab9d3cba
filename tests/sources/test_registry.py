"""URIs, options and the errors for unusable URIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk.errors import SourceError
from sdk.sources import open_source, schemes
from sdk.sources.uri import options, parse_uri


def test_parse_uri_forms() -> None:
    p = parse_uri("file://clips/a.mp4?realtime=1&fps=5")
    assert (p.scheme, p.target, p.query) == ("file", "clips/a.mp4", {"realtime": "1", "fps": "5"})
    assert parse_uri("file:///data/a%20b.wav").target == "/data/a b.wav"
    assert parse_uri("clip.mp4").scheme == "file" and parse_uri("clip.mp4").target == "clip.mp4"
    assert parse_uri("0").scheme == "v4l2" and parse_uri("0").target == "0"
    assert parse_uri("MIC://default").scheme == "mic"


def test_options_typed_and_kwargs_win() -> None:
    spec = {"rate": (int, 16000), "realtime": (bool, False), "name": (str, "x")}
    opts = options(parse_uri("mic://default?rate=8000&realtime=yes"), {"name": "y"}, spec)
    assert opts == {"rate": 8000, "realtime": True, "name": "y"}
    assert options(parse_uri("mic://default?rate=8000"), {"rate": 22050}, spec)["rate"] == 22050
    with pytest.raises(SourceError, match="unknown option.*raet") as e:
        options(parse_uri("mic://default?raet=1"), {}, spec)
    assert "known options: name, rate, realtime" in str(e.value)
    with pytest.raises(SourceError, match="rate='fast' is not a valid int"):
        options(parse_uri("mic://default?rate=fast"), {}, spec)


def test_every_scheme_is_importable() -> None:
    import importlib

    from sdk.sources.registry import _SCHEMES

    assert {"file", "v4l2", "csi", "rtsp", "mic", "serial", "csv", "wfdb", "synthetic"} <= set(schemes())
    for target in _SCHEMES.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


@pytest.mark.parametrize("uri, message", [
    ("", "empty source URI"),
    ("ftp://host/x.mp4", "unknown scheme 'ftp'"),
    ("notes.xyz", "does not exist"),
    ("synthetic://weather", "unknown synthetic kind"),
    ("synthetic://ecg?hr=abc", "hr='abc' is not a valid float"),
    ("serial:///dev/ttyUSB0?format=xml", "unsupported serial format"),
])
def test_bad_uris_raise_one_clear_error(uri: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as e:
        open_source(uri)
    assert e.value.uri == uri and e.value.hint


def test_unsupported_extension(tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"x")
    with pytest.raises(SourceError, match="unsupported file type '.onnx'") as e:
        open_source(str(f))
    assert ".mp4" in e.value.hint and ".wav" in e.value.hint


def test_a_failed_open_releases_what_it_acquired() -> None:
    from sdk.sources.base import BaseSource

    class HalfOpen(BaseSource):
        released = 0

        def _open(self) -> None:
            self.handle = object()
            raise SourceError(self.uri, "device vanished during open")

        def _close(self) -> None:
            HalfOpen.released += 1

        def _items(self):  # type: ignore[no-untyped-def]
            yield from ()

    src = HalfOpen("test://x")
    with pytest.raises(SourceError, match="vanished"):
        src.open()
    assert HalfOpen.released == 1
