"""Signed model bundles: one file carrying a model folder, signed with Ed25519.

    keygen("keys/signing.key", "keys/signing.pub")                  # once, on the release machine
    b = pack("models/kws", "keys/signing.key", version="1.3.0")     # models/kws-1.3.0.bundle
    info = verify(b, ["keys/signing.pub"], active_version="1.2.0")  # on the device: BundleInfo or RolloutRejected
    unpack_verified(b, "staging/kws", ["keys/signing.pub"])         # extracts only after every check passed

Layout (all integers big-endian)::

    0    8   magic b"EMBRBDL1"
    8    16  key id: sha256(raw 32-byte public key)[:16]
    24   64  Ed25519 signature of b"ember-bundle-v1\\0" + header
    88   4   header length H (at most 64 KiB)
    92   H   header: canonical JSON (sorted keys, no spaces) {"format": 1, "name", "version",
             "payload_sha256", "payload_bytes", "unpacked_bytes", "files"}
    92+H     payload: a gzip-compressed tar of the model folder (regular files and folders only)

The signature covers the header, the header covers the payload by its sha256 and size, so changing any
byte is caught before anything is extracted. ``verify`` refuses (``RolloutRejected(reason, message)``):
``unsigned``, ``bad_format``, ``untrusted_key``, ``bad_signature``, ``truncated``, ``tampered``,
``bad_version``, ``downgrade``, ``oversized``, ``bomb``, ``too_many_files``, ``path_traversal``,
``absolute_path``, ``link``, ``special_file``, ``duplicate``, ``manifest_missing``, ``manifest_invalid``,
``version_mismatch``; ``unpack_verified`` also ``model_invalid``. Private keys stay on the release
machine; devices hold public keys only, installed with the device image — never sent over MQTT.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sdk.errors import ModelError, RolloutRejected
from sdk.models.manifest import MANIFEST_FILE, Manifest
from sdk.rollout.common import Emit, check_model, emitter, fsync_tree, is_newer, parse_version
from sdk.rollout.keys import key_id, keygen, load_private_key, load_public_keys

MAGIC = b"EMBRBDL1"
DOMAIN = b"ember-bundle-v1\0"
PREFIX = 92  # magic + key id + signature + header length
MAX_HEADER = 64 << 10
MAX_MANIFEST = 1 << 20
LIMITS = {"max_bytes": 256 << 20, "max_unpacked_bytes": 1 << 30, "max_files": 1000}


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    name: str
    version: str
    key_id: str
    payload_sha256: str
    payload_bytes: int
    unpacked_bytes: int
    files: int
    payload_offset: int


# ---- writing ------------------------------------------------------------------------------------
def canonical(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal(out: str | os.PathLike[str], key: Ed25519PrivateKey, payload: bytes | Path, **header: Any) -> Path:
    """Write a bundle of ``payload`` (a gzip'd tar, as bytes or a file) with ``header`` fields; the payload's
    sha256 and size are filled in unless given. The low level of ``pack`` (and of the test corpus)."""
    data = payload.read_bytes() if isinstance(payload, Path) else payload
    header = {"format": 1, "payload_sha256": hashlib.sha256(data).hexdigest(), "payload_bytes": len(data)} | header
    head = canonical(header)
    sig = key.sign(DOMAIN + head)
    out = Path(out)
    with open(out, "wb") as f:
        f.write(MAGIC + key_id(key.public_key()) + sig + struct.pack(">I", len(head)) + head)
        f.write(data)
    return out


def tar_payload(files: Sequence[tuple[str, bytes]]) -> bytes:
    """A reproducible gzip'd tar of ``(name, bytes)`` regular files (mtime 0, owner root, mode 0644)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def pack(folder: str | os.PathLike[str], key_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
         version: str | None = None) -> Path:
    """Bundle a model folder (all its regular files; manifest.json gets ``version``) signed with ``key_path``.
    Default output: ``<folder's parent>/<name>-<version>.bundle``."""
    folder = Path(folder)
    key = load_private_key(key_path)
    manifest = Manifest.load(folder)
    version = version or manifest.version
    if version is None:
        raise ModelError(f"{folder}: no version; pass --version (e.g. 1.0.0) or set \"version\" in manifest.json")
    try:
        parse_version(version)
    except RolloutRejected as e:
        raise ModelError(e.message) from None
    bad = [f"{v.tier}/{v.backend}: {v.problem}" for v in manifest.variants if not v.verify()]
    if bad or not manifest.variants:
        raise ModelError(f"{folder}: not packed, variants unusable: {'; '.join(bad) or 'none listed'} "
                         "(fix with 'ember models verify')")
    manifest.version = version
    files = [(MANIFEST_FILE, (json.dumps(manifest.to_dict(), indent=2) + "\n").encode())]
    for path in sorted(p for p in folder.rglob("*") if p.name != MANIFEST_FILE or p.parent != folder):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ModelError(f"{path}: links and special files cannot be packed; copy the real file in")
        if path.is_file():
            files.append((path.relative_to(folder).as_posix(), path.read_bytes()))
    payload = tar_payload(files)
    target = Path(out) if out else folder.resolve().parent / f"{manifest.name}-{version}.bundle"
    return seal(target, key, payload, name=manifest.name, version=version,
                unpacked_bytes=sum(len(d) for _, d in files), files=len(files))


# ---- reading ------------------------------------------------------------------------------------
def verify(bundle: str | os.PathLike[str], trusted_public_keys: Sequence[Any], *, active_version: str | None = None,
           allow_downgrade: bool = False, emit: Emit | None = None, deployment: str | None = None,
           **limits: int) -> BundleInfo:
    """Check everything without extracting (see the module docstring); a refusal is a ``rollout.rejected``
    event and ``RolloutRejected``. ``limits``: ``max_bytes``, ``max_unpacked_bytes``, ``max_files``."""
    try:
        info = _check_header(Path(bundle), load_public_keys(trusted_public_keys), active_version,
                             allow_downgrade, LIMITS | limits)
        for _ in _members(info, LIMITS | limits, extract_to=None):
            pass
        return info
    except RolloutRejected as e:
        _rejected(emit, e, bundle, deployment)
        raise


def unpack_verified(bundle: str | os.PathLike[str], dest: str | os.PathLike[str], trusted_public_keys: Sequence[Any],
                    *, emit: Emit | None = None, deployment: str | None = None, **kwargs: Any) -> BundleInfo:
    """``verify``, then extract into the new folder ``dest`` (fsynced) and check it loads as a model.
    On any refusal ``dest`` is removed."""
    dest = Path(dest)
    info = verify(bundle, trusted_public_keys, emit=emit, deployment=deployment, **kwargs)
    try:
        dest.mkdir(parents=True, exist_ok=False)
        for _ in _members(info, LIMITS | {k: v for k, v in kwargs.items() if k in LIMITS}, extract_to=dest):
            pass
        fsync_tree(dest)
        check_model(dest, emit=lambda *a, **k: None)
        return info
    except RolloutRejected as e:
        shutil.rmtree(dest, ignore_errors=True)
        _rejected(emit, e, bundle, deployment)
        raise
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _rejected(emit: Emit | None, e: RolloutRejected, bundle: Any, deployment: str | None) -> None:
    data = {"reason": e.reason, "message": e.message, "bundle": str(bundle)}
    emitter(emit)("rollout.rejected", level="error", **data, **({"deployment": deployment} if deployment else {}))


def _check_header(path: Path, keys: dict[bytes, Ed25519PublicKey], active: str | None, allow_downgrade: bool,
                  limits: dict[str, int]) -> BundleInfo:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            first = f.read(512)
            head = first[:PREFIX]
            hl = struct.unpack(">I", head[88:92])[0] if len(head) == PREFIX else 0
            f.seek(PREFIX)
            header = f.read(hl) if head[:8] == MAGIC and hl <= MAX_HEADER else b""
    except OSError as e:
        raise RolloutRejected("bad_format", f"{path}: cannot read the bundle ({e.strerror or e})") from None
    if size > limits["max_bytes"]:
        raise RolloutRejected("oversized", f"bundle is {size} bytes, over the limit of {limits['max_bytes']}")
    if head[:8] != MAGIC:
        if first[:2] in (b"\x1f\x8b", b"PK") or first[257:262] == b"ustar":
            raise RolloutRejected("unsigned", "a plain archive, not a signed bundle; make one with 'ember models pack'")
        if len(head) < 8 and MAGIC.startswith(head):
            raise RolloutRejected("truncated", f"bundle is only {size} bytes")
        raise RolloutRejected("bad_format", "not an Ember bundle (bad magic); make one with 'ember models pack'")
    if len(head) < PREFIX:
        raise RolloutRejected("truncated", f"bundle is only {size} bytes, shorter than its fixed header")
    kid, sig = head[8:24], head[24:88]
    if sig == bytes(64):
        raise RolloutRejected("unsigned", "the bundle carries no signature; sign it with 'ember models pack --key'")
    if not keys:
        raise RolloutRejected("untrusted_key", "no trusted public keys configured on this device")
    if kid not in keys:
        raise RolloutRejected("untrusted_key", f"signed by key {kid.hex()}, not one of the trusted keys "
                              f"({', '.join(k.hex() for k in keys)})")
    if hl > MAX_HEADER:
        raise RolloutRejected("bad_format", f"header length {hl} is over {MAX_HEADER} bytes")
    if len(header) < hl:
        raise RolloutRejected("truncated", f"bundle ends inside its header ({size} bytes)")
    try:
        keys[kid].verify(sig, DOMAIN + header)
    except InvalidSignature:
        raise RolloutRejected("bad_signature", "the signature does not match the header (tampered or corrupt)") from None
    return _check_fields(path, header, kid, size, active, allow_downgrade, limits)


def _check_fields(path: Path, raw: bytes, kid: bytes, size: int, active: str | None, allow_downgrade: bool,
                  limits: dict[str, int]) -> BundleInfo:
    try:
        h = json.loads(raw)
        info = BundleInfo(path, str(h["name"]), str(h["version"]), kid.hex(), str(h["payload_sha256"]),
                          int(h["payload_bytes"]), int(h["unpacked_bytes"]), int(h["files"]), PREFIX + len(raw))
        if h.get("format") != 1:
            raise ValueError(f"format {h.get('format')!r} (this device reads format 1)")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RolloutRejected("bad_format", f"unusable header ({str(e)[:80]})") from None
    parse_version(info.version)
    if not allow_downgrade and not is_newer(info.version, active):
        raise RolloutRejected("downgrade", f"version {info.version} is not newer than the active {active} "
                              "(an older or equal version installs only as an explicit rollback)")
    if info.unpacked_bytes > limits["max_unpacked_bytes"]:
        raise RolloutRejected("oversized", f"unpacks to {info.unpacked_bytes} bytes, over the limit of "
                              f"{limits['max_unpacked_bytes']}")
    if info.files > limits["max_files"]:
        raise RolloutRejected("too_many_files", f"{info.files} files, over the limit of {limits['max_files']}")
    have = size - info.payload_offset
    if have < info.payload_bytes:
        raise RolloutRejected("truncated", f"payload is {have} of {info.payload_bytes} bytes (an interrupted "
                              "download? fetch it again)")
    if have > info.payload_bytes:
        raise RolloutRejected("tampered", f"{have - info.payload_bytes} unexpected bytes after the payload")
    h256 = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(info.payload_offset)
        for block in iter(lambda: f.read(1 << 20), b""):
            h256.update(block)
    if h256.hexdigest() != info.payload_sha256:
        raise RolloutRejected("tampered", "payload sha256 does not match the signed header")
    return info


class _Hashing(io.RawIOBase):
    """Reads the rest of a file, hashing what it reads."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner, self.sha = inner, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.inner.read(len(b))
        self.sha.update(data)
        b[: len(data)] = data
        return len(data)


class _Limited(io.RawIOBase):
    """The decompressed stream, refused as a bomb once more than ``limit`` bytes come out of it."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.inner.read(len(b))
        self.count += len(data)
        if self.count > self.limit:
            raise RolloutRejected("bomb", f"the payload decompresses past {self.limit} bytes")
        b[: len(data)] = data
        return len(data)


def _members(info: BundleInfo, limits: dict[str, int], extract_to: Path | None) -> Iterator[str]:
    """Stream the payload's tar, checking every member; with ``extract_to`` also write the files there."""
    seen: set[str] = set()
    total, files, manifest = 0, 0, None
    cap = min(info.unpacked_bytes, limits["max_unpacked_bytes"])
    with open(info.path, "rb") as f:
        f.seek(info.payload_offset)
        raw = _Hashing(f)
        stream = _Limited(gzip.GzipFile(fileobj=raw, mode="rb"), cap + 2048 * (info.files + 8) + (64 << 10))
        try:
            with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|") as tar:
                for m in tar:
                    name = _member_name(m.name, seen)
                    files += 1
                    if files > info.files or files > limits["max_files"]:
                        raise RolloutRejected("too_many_files", f"more members than the {info.files} declared")
                    _member_type(m)
                    total += m.size
                    if total > cap:
                        raise RolloutRejected("bomb", f"members add up to more than {cap} bytes (declared "
                                              f"{info.unpacked_bytes})")
                    if m.isfile():
                        src = tar.extractfile(m)
                        assert src is not None
                        if name == MANIFEST_FILE:
                            manifest = _check_manifest(src.read(MAX_MANIFEST + 1), info)
                            src = io.BytesIO(manifest)
                        if extract_to is not None:
                            _write(extract_to / name, src)
                    elif extract_to is not None:
                        (extract_to / name).mkdir(parents=True, exist_ok=True)
                    yield name
        except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as e:  # corrupt gzip or tar
            raise RolloutRejected("bad_format", f"corrupt payload ({type(e).__name__}: {str(e)[:80]})") from None
        while raw.read(1 << 20):  # the rest, so the hash covers the payload read now, whatever changed since
            pass
    if raw.sha.hexdigest() != info.payload_sha256:
        raise RolloutRejected("tampered", "the bundle changed while it was being read")
    if manifest is None:
        raise RolloutRejected("manifest_missing", f"no {MANIFEST_FILE} at the top of the bundle")


def _member_name(raw: str, seen: set[str]) -> str:
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        raise RolloutRejected("absolute_path", f"member {raw[:80]!r} has an absolute path")
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if ".." in parts:
        raise RolloutRejected("path_traversal", f"member {raw[:80]!r} points outside the model folder")
    name = "/".join(p for p in parts if p != ".")
    if not name or "\0" in name:
        raise RolloutRejected("bad_format", f"member name {raw[:80]!r} is empty or invalid")
    if name in seen:
        raise RolloutRejected("duplicate", f"member {name[:80]!r} appears twice")
    seen.add(name)
    return name


def _member_type(m: tarfile.TarInfo) -> None:
    if m.issym() or m.islnk():
        raise RolloutRejected("link", f"member {m.name[:80]!r} is a {'symlink' if m.issym() else 'hard link'}")
    if not (m.isfile() or m.isdir()):
        raise RolloutRejected("special_file", f"member {m.name[:80]!r} is a device, FIFO or other special file")


def _check_manifest(data: bytes, info: BundleInfo) -> bytes:
    if len(data) > MAX_MANIFEST:
        raise RolloutRejected("manifest_invalid", f"{MANIFEST_FILE} is over {MAX_MANIFEST} bytes")
    try:
        m = Manifest.from_dict(json.loads(data), source=MANIFEST_FILE)
    except (ValueError, UnicodeDecodeError, RecursionError, ModelError) as e:
        raise RolloutRejected("manifest_invalid", str(e)[:200]) from None
    if m.name != info.name:
        raise RolloutRejected("manifest_invalid", f"manifest names model {m.name!r}, the header {info.name!r}")
    if m.version is None or parse_version(m.version) != parse_version(info.version):
        raise RolloutRejected("version_mismatch", f"manifest version {m.version} differs from the signed "
                              f"header's {info.version}")
    return data


def _write(path: Path, src: IO[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)



__all__ = ["BundleInfo", "keygen", "load_public_keys", "pack", "seal", "tar_payload", "unpack_verified", "verify"]
