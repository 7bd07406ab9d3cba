"""Getting a bundle onto the device: ``download`` over HTTP(S) with a size limit, resume and a sha256 check,
or ``ChunkAssembler`` for bundles sent in chunks over MQTT (QoS 1; the transport is the fleet's).

    download("https://models.example.com/kws-1.3.0.bundle", "/var/lib/ember/kws.bundle",
             sha256="9f2c…", max_bytes=64 << 20, timeout=30, retries=3)

    asm = ChunkAssembler("d-42", max_bytes=1 << 20)
    for msg in messages:                 # {"deployment", "index", "count", "sha256", "data": base64}, any order
        if asm.add(msg):
            asm.write("/var/lib/ember/kws.bundle")

Errors are ``FetchError(code, message, resumable)``: ``not_found``, ``http_error``, ``too_big``,
``checksum``, ``connection`` / ``connection_lost`` (resumable: call ``download`` again and it continues from
``DEST.part`` with an HTTP Range request), ``chunk_invalid``, ``chunk_conflict``, ``incomplete``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sdk.errors import FetchError
from sdk.models.manifest import sha256_file

Progress = Callable[[int, int | None], Any]  # progress(bytes so far, total or None)
_SHA = re.compile(r"^[0-9a-f]{64}\Z")


def _check_sha(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA.match(sha256.lower()):
        raise FetchError("checksum", f"expected sha256 {str(sha256)[:70]!r} is not 64 hex digits")
    return sha256.lower()


def download(url: str, dest: str | os.PathLike[str], *, sha256: str, max_bytes: int, timeout: float = 30.0,
             resume: bool = True, retries: int = 0, progress: Progress | None = None,
             context: ssl.SSLContext | None = None) -> Path:
    """Download ``url`` to ``dest`` (through ``dest.part``), at most ``max_bytes``, then check ``sha256``.
    ``retries``: resumable failures retried here (with a short back-off) before ``FetchError`` is raised."""
    expected = _check_sha(sha256)
    if not url.lower().startswith(("http://", "https://")):
        raise FetchError("http_error", f"{url[:80]}: only http:// and https:// URLs are downloaded")
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if not resume:
        part.unlink(missing_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, max_bytes, timeout, progress, context)
            break
        except FetchError as e:
            if not e.resumable or attempt == retries:
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0))
    got = sha256_file(part)
    if got != expected:
        part.unlink(missing_ok=True)
        raise FetchError("checksum", f"{url}: sha256 {got[:16]}… is not the expected {expected[:16]}… "
                         "(a wrong or changed file; the partial download was removed)")
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, max_bytes: int, timeout: float, progress: Progress | None,
           context: ssl.SSLContext | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    if have > max_bytes:
        part.unlink()
        have = 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout, context=context)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing after what we have: the checksum decides
            return
        if e.code == 404:
            raise FetchError("not_found", f"{url}: 404 not found (check the deployment's URL)") from None
        raise FetchError("http_error", f"{url}: HTTP {e.code} {e.reason}", resumable=e.code >= 500) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        why = getattr(e, "reason", e)
        raise FetchError("connection", f"{url}: cannot connect ({why}); retry later", resumable=True) from None
    with resp:
        if resp.status != 206 or not str(resp.headers.get("Content-Range", "")).startswith(f"bytes {have}-"):
            have = 0  # the server sent the whole file (no Range support): start over
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if total is not None and total > max_bytes:
            raise FetchError("too_big", f"{url}: {total} bytes, over the limit of {max_bytes}")
        try:
            with open(part, "ab" if have else "wb") as f:
                while chunk := resp.read(1 << 16):
                    have += len(chunk)
                    if have > max_bytes:
                        f.close()
                        part.unlink(missing_ok=True)
                        raise FetchError("too_big", f"{url}: more than the limit of {max_bytes} bytes")
                    f.write(chunk)
                    if progress:
                        progress(have, total)
        except (OSError, http.client.HTTPException) as e:
            raise FetchError("connection_lost", f"{url}: connection lost after {have} bytes "
                             f"({type(e).__name__}); download again to resume", resumable=True) from None
    if total is not None and have < total:
        raise FetchError("connection_lost", f"{url}: got {have} of {total} bytes; download again to resume",
                         resumable=True)


def chunk_messages(bundle: str | os.PathLike[str] | bytes, chunk_bytes: int = 48 << 10,
                   deployment: str = "") -> list[dict[str, Any]]:
    """The messages carrying ``bundle`` (a path or bytes) in chunks of ``chunk_bytes`` (before base64)."""
    data = bundle if isinstance(bundle, bytes) else Path(bundle).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    count = max(1, -(-len(data) // chunk_bytes))
    return [{"deployment": deployment, "index": i, "count": count, "sha256": digest,
             "data": base64.b64encode(data[i * chunk_bytes:(i + 1) * chunk_bytes]).decode()} for i in range(count)]


class ChunkAssembler:
    """Collects one deployment's chunks in any order, duplicates allowed (QoS 1 redelivers)."""

    def __init__(self, deployment: str, *, max_bytes: int, max_chunks: int = 4096) -> None:
        self.deployment, self.max_bytes, self.max_chunks = deployment, max_bytes, max_chunks
        self.count: int | None = None
        self.sha256: str | None = None
        self.chunks: dict[int, bytes] = {}
        self.size = 0
        self.duplicates = 0

    def add(self, msg: Mapping[str, Any]) -> bool:
        """Add one chunk message; True once every chunk is here. Raises ``FetchError`` on a bad chunk."""
        try:
            dep, index, count, sha = msg["deployment"], msg["index"], msg["count"], _check_sha(msg["sha256"])
            data = base64.b64decode(msg["data"], validate=True)
        except (KeyError, TypeError, binascii.Error, FetchError) as e:
            raise FetchError("chunk_invalid", f"deployment {self.deployment}: malformed chunk ({e})") from None
        if dep != self.deployment:
            raise FetchError("chunk_invalid", f"chunk of deployment {dep!r}, expected {self.deployment!r}")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= self.max_chunks:
            raise FetchError("too_big", f"deployment {dep}: {count!r} chunks (at most {self.max_chunks})")
        if (self.count, self.sha256) not in ((None, None), (count, sha)):
            raise FetchError("chunk_conflict", f"deployment {dep}: chunk says {count} chunks / sha256 {sha[:12]}, "
                             f"earlier ones {self.count} / {str(self.sha256)[:12]}")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise FetchError("chunk_invalid", f"deployment {dep}: chunk index {index!r} outside 0..{count - 1}")
        self.count, self.sha256 = count, sha
        if index in self.chunks:
            if self.chunks[index] != data:
                raise FetchError("chunk_conflict", f"deployment {dep}: chunk {index} arrived twice, different")
            self.duplicates += 1
            return self.complete
        if self.size + len(data) > self.max_bytes:
            raise FetchError("too_big", f"deployment {dep}: chunks exceed the limit of {self.max_bytes} bytes")
        self.chunks[index] = data
        self.size += len(data)
        return self.complete

    @property
    def complete(self) -> bool:
        return self.count is not None and len(self.chunks) == self.count

    def missing(self) -> list[int]:
        return [i for i in range(self.count or 0) if i not in self.chunks]

    def result(self) -> bytes:
        """The assembled bytes, checked against the sha256 the chunks carry."""
        if not self.complete:
            raise FetchError("incomplete", f"deployment {self.deployment}: missing chunks {self.missing()[:10]}",
                             resumable=True)
        data = b"".join(self.chunks[i] for i in range(self.count or 0))
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise FetchError("checksum", f"deployment {self.deployment}: assembled bundle fails its sha256")
        return data

    def write(self, path: str | os.PathLike[str]) -> Path:
        from sdk.rollout.common import write_durable

        write_durable(Path(path), self.result())
        return Path(path)
