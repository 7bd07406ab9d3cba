"""Downloads against a real local HTTP server (one that drops the connection midway, once), and chunked
transfers reassembled out of order with duplicates."""

from __future__ import annotations

import hashlib
import http.server
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from sdk.errors import FetchError
from sdk.rollout.fetch import ChunkAssembler, chunk_messages, download

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    drop_once = True
    requests: ClassVar[list[str | None]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.headers.get("Range"))
        if self.path != "/model.bundle":
            self.send_error(404)
            return
        start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        if type(self).drop_once:  # send a third, then cut the connection
            type(self).drop_once = False
            self.wfile.write(BODY[start:start + 100_000])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(BODY[start:])


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.drop_once, _Handler.requests = True, []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_connection_lost_then_resumed_with_range(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "b.bundle"
    with pytest.raises(FetchError) as e:
        download(f"{server}/model.bundle", dest, sha256=SHA, max_bytes=1 << 20, timeout=5)
    assert e.value.code == "connection_lost" and e.value.resumable
    assert (tmp_path / "b.bundle.part").stat().st_size == 100_000 and not dest.exists()
    seen: list[int] = []
    download(f"{server}/model.bundle", dest, sha256=SHA, max_bytes=1 << 20, timeout=5,
             progress=lambda n, total: seen.append(n))
    assert dest.read_bytes() == BODY and _Handler.requests == [None, "bytes=100000-"]
    assert seen[0] > 100_000 and seen[-1] == len(BODY)


def test_retries_resume_inside_one_call(server: str, tmp_path: Path) -> None:
    download(f"{server}/model.bundle", tmp_path / "b", sha256=SHA, max_bytes=1 << 20, retries=2, timeout=5)
    assert (tmp_path / "b").read_bytes() == BODY and len(_Handler.requests) == 2


def test_limits_checksum_and_missing(server: str, tmp_path: Path) -> None:
    _Handler.drop_once = False
    with pytest.raises(FetchError, match="too_big"):
        download(f"{server}/model.bundle", tmp_path / "b", sha256=SHA, max_bytes=1000, timeout=5)
    with pytest.raises(FetchError, match="checksum") as e:
        download(f"{server}/model.bundle", tmp_path / "b", sha256="0" * 64, max_bytes=1 << 20, timeout=5)
    assert not e.value.resumable and not (tmp_path / "b.part").exists() and not (tmp_path / "b").exists()
    with pytest.raises(FetchError, match="not_found"):
        download(f"{server}/nothing", tmp_path / "b", sha256=SHA, max_bytes=1 << 20, timeout=5)
    with pytest.raises(FetchError, match="only http"):
        download("file:///etc/passwd", tmp_path / "b", sha256=SHA, max_bytes=1 << 20)


def test_connection_refused_is_resumable(tmp_path: Path) -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = srv.server_address[1]
    srv.server_close()  # nothing listens there now
    with pytest.raises(FetchError) as e:
        download(f"http://127.0.0.1:{port}/model.bundle", tmp_path / "b", sha256=SHA, max_bytes=1 << 20, timeout=2)
    assert e.value.code == "connection" and e.value.resumable


def test_chunks_out_of_order_with_duplicates(tmp_path: Path) -> None:
    msgs = chunk_messages(BODY, 10_000, deployment="d-1")
    assert len(msgs) == 30
    shuffled = msgs + random.Random(0).sample(msgs, 10)
    random.Random(1).shuffle(shuffled)
    asm = ChunkAssembler("d-1", max_bytes=1 << 20)
    done = [asm.add(m) for m in shuffled]
    assert done[-1] and done.count(True) >= 1 and asm.duplicates == 10
    assert asm.write(tmp_path / "b").read_bytes() == BODY


def test_bad_chunks_are_refused() -> None:
    msgs = chunk_messages(BODY, 100_000, deployment="d-1")
    asm = ChunkAssembler("d-1", max_bytes=150_000)
    asm.add(msgs[0])
    with pytest.raises(FetchError, match="incomplete"):
        asm.result()
    with pytest.raises(FetchError, match="too_big"):
        asm.add(msgs[1])
    for bad, code in (({**msgs[1], "deployment": "d-2"}, "chunk_invalid"), ({**msgs[1], "data": "%%%"}, "chunk_invalid"),
                      ({**msgs[1], "index": 9}, "chunk_invalid"), ({**msgs[1], "count": 5}, "chunk_conflict"),
                      ({**msgs[0], "data": msgs[1]["data"]}, "chunk_conflict"), ({"index": 0}, "chunk_invalid")):
        with pytest.raises(FetchError, match=code):
            asm.add(bad)
    forged = ChunkAssembler("d-1", max_bytes=1 << 20)
    for m in msgs:
        forged.add({**m, "sha256": "ab" * 32})
    with pytest.raises(FetchError, match="checksum"):
        forged.result()


def test_https_download_checks_the_certificate(tmp_path: Path, self_signed_cert: tuple[Path, Path]) -> None:
    import ssl

    cert, key = self_signed_cert
    _Handler.drop_once, _Handler.requests = False, []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    url = f"https://127.0.0.1:{srv.server_address[1]}/model.bundle"
    try:
        with pytest.raises(FetchError) as e:  # not trusted by the system's CAs
            download(url, tmp_path / "b", sha256=SHA, max_bytes=1 << 20, timeout=5)
        assert e.value.code == "connection" and "CERTIFICATE" in str(e.value).upper()
        trusted = ssl.create_default_context(cafile=str(cert))
        download(url, tmp_path / "b", sha256=SHA, max_bytes=1 << 20, timeout=5, context=trusted)
        assert (tmp_path / "b").read_bytes() == BODY
    finally:
        srv.shutdown()
        srv.server_close()
