"""A corpus of bad bundles made from a good one: every way a bundle must be refused, each with the reason
``verify``/``unpack_verified`` must give. Used by tests/rollout and bench/rollout.py.

    corpus = make_corpus("tiny-1.1.0.bundle", "keys/signing.key", "corpus/")   # [(path, reason), ...] (≥ 50)
    check_corpus(corpus, ["keys/signing.pub"], good="tiny-1.1.0.bundle")
    # {"bad_bundles": 63, "refused": 63, "as_expected": 63, "mismatched": [], "accepted": [], "good_accepted": True}

Checked with ``CORPUS_ACTIVE`` as the device's active version (the downgrade cases are at or below it; the
good bundle must be newer) and ``CORPUS_LIMITS`` (the oversize and bomb cases exceed them).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdk.errors import RolloutRejected
from sdk.rollout.bundle import PREFIX, seal, tar_payload, unpack_verified
from sdk.rollout.keys import Ed25519PrivateKey, load_private_key

CORPUS_ACTIVE = "0.0.0.1"
CORPUS_LIMITS = {"max_bytes": 2 << 20, "max_unpacked_bytes": 4 << 20, "max_files": 64}


def _parts(good: bytes) -> tuple[dict[str, Any], list[tuple[str, bytes]], int]:
    hl = int.from_bytes(good[88:92], "big")
    header = json.loads(good[PREFIX:PREFIX + hl])
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(good[PREFIX + hl:]))) as tar:
        files = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]  # type: ignore[union-attr]
    return header, files, PREFIX + hl


def _tar(members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", **extra: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    for k, v in extra.items():
        setattr(info, k, v)
    return info


def _byte_cases(good: bytes, payload_at: int) -> list[tuple[str, bytes, str]]:
    """Flipped bytes in every region, truncations and appended bytes of the good bundle itself."""
    n, cases = len(good), []
    flips = {"magic": ([0, 7], "bad_format"), "keyid": ([8, 23], "untrusted_key"),
             "signature": ([24, 55, 87], "bad_signature"), "hlen-high": ([88], "bad_format"),
             "hlen-low": ([91], "bad_signature"),
             "header": ([PREFIX, PREFIX + 7, (PREFIX + payload_at) // 2, payload_at - 2, payload_at - 1],
                        "bad_signature"),
             "payload": ([payload_at, payload_at + 9, (payload_at + n) // 2, n - 9, n - 1], "tampered")}
    for region, (offsets, reason) in flips.items():
        for off in offsets:
            b = bytearray(good)
            b[off] ^= 0x40
            cases.append((f"flip-{region}-{off}", bytes(b), reason))
    for cut in (0, 5, 40, PREFIX - 1, (PREFIX + payload_at) // 2, payload_at, (payload_at + n) // 2, n - 1):
        cases.append((f"truncated-{cut}", good[:cut], "truncated"))
    cases.append(("appended", good + b"\0" * 16, "tampered"))
    return cases


def _member_cases(files: list[tuple[str, bytes]]) -> list[tuple[str, list[tuple[tarfile.TarInfo, bytes | None]], str]]:
    """Payloads with hostile members (each sealed with the good key and header fields)."""
    real = [(_member(name), data) for name, data in files]
    man = dict(files)["manifest.json"]
    model_name = next(n for n, _ in files if n != "manifest.json")
    evil = b"evil"
    cases: list[tuple[str, list[tuple[tarfile.TarInfo, bytes | None]], str]] = []
    for name in ("../evil", "a/../../evil", "sub/../../../etc/cron.d/x"):
        cases.append((f"traversal-{len(cases)}", [*real, (_member(name), evil)], "path_traversal"))
    for name in ("/etc/evil", "\\evil", "C:/evil"):
        cases.append((f"absolute-{len(cases)}", [*real, (_member(name), evil)], "absolute_path"))
    cases += [("symlink-out", [*real, (_member("x", tarfile.SYMTYPE, "/etc/passwd"), None)], "link"),
              ("symlink-model", [(_member("manifest.json"), man), (_member(model_name, tarfile.SYMTYPE,
                                                                            "/dev/zero"), None)], "link"),
              ("hardlink", [*real, (_member("h", tarfile.LNKTYPE, "/etc/shadow"), None)], "link"),
              ("chardev", [*real, (_member("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), None)], "special_file"),
              ("blockdev", [*real, (_member("sda", tarfile.BLKTYPE, devmajor=8), None)], "special_file"),
              ("fifo", [*real, (_member("pipe", tarfile.FIFOTYPE), None)], "special_file"),
              ("dup-manifest", [*real, (_member("manifest.json"), man)], "duplicate"),
              ("dup-model", [*real, (_member(model_name), evil)], "duplicate"),
              ("dup-dotslash", [*real, (_member("./" + model_name), evil)], "duplicate"),
              ("no-manifest", [m for m in real if m[0].name != "manifest.json"], "manifest_missing"),
              ("manifest-not-json", [(_member("manifest.json"), b"{not json"), *real[1:]], "manifest_invalid"),
              ("manifest-schema", [(_member("manifest.json"), b'{"name": "x"}'), *real[1:]], "manifest_invalid"),
              ("manifest-deep", [(_member("manifest.json"), b"[" * 100000 + b"]" * 100000), *real[1:]],
               "manifest_invalid")]
    m = json.loads(man)
    for key, value, reason in (("name", "other-model", "manifest_invalid"), ("version", "99.0", "version_mismatch")):
        cases.append((f"manifest-{key}", [(_member("manifest.json"), json.dumps(m | {key: value}).encode()),
                                          *real[1:]], reason))
    bad_sha = [(i, d if i.name != model_name else d[:-1] + bytes([d[-1] ^ 1])) for i, d in real]
    cases.append(("model-corrupt", bad_sha, "model_invalid"))
    cases.append(("many-members", real + [(_member(f"f{i}"), b"x") for i in range(80)], "too_many_files"))
    cases.append(("pax-bomb", [(_member("p", pax_headers={"comment": "A" * (1 << 20)}), b"x"), *real], "bomb"))
    return cases


def make_corpus(good_bundle: str | os.PathLike[str], key: str | os.PathLike[str] | Ed25519PrivateKey,
                out_dir: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """Write the bad bundles into ``out_dir``; returns ``[(path, expected reason)]``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sk = key if isinstance(key, Ed25519PrivateKey) else load_private_key(key)
    good = Path(good_bundle).read_bytes()
    header, files, payload_at = _parts(good)
    fields = {k: header[k] for k in ("name", "version", "unpacked_bytes", "files")}
    corpus: list[tuple[Path, str]] = []

    def write(name: str, data: bytes, reason: str) -> None:
        (out / f"{name}.bundle").write_bytes(data)
        corpus.append((out / f"{name}.bundle", reason))

    def sealed(name: str, payload: bytes, reason: str, signer: Ed25519PrivateKey = sk, **over: Any) -> None:
        seal(out / f"{name}.bundle", signer, payload, **(fields | over))
        corpus.append((out / f"{name}.bundle", reason))

    for name, data, reason in _byte_cases(good, payload_at):
        write(name, data, reason)
    payload = good[payload_at:]
    write("unsigned-targz", payload, "unsigned")
    write("unsigned-zero-signature", good[:24] + bytes(64) + good[88:], "unsigned")
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        for name, data in files:
            z.writestr(name, data)
    write("unsigned-zip", zbuf.getvalue(), "unsigned")
    sealed("wrong-key", payload, "untrusted_key", signer=Ed25519PrivateKey.generate())
    for v in ("0", "0.0", CORPUS_ACTIVE):
        sealed(f"downgrade-{v}", payload, "downgrade", version=v)
    sealed("bad-version", payload, "bad_version", version="v2-beta")
    sealed("format-2", payload, "bad_format", format=2)
    sealed("not-gzip", b"this is not a gzip stream" * 10, "bad_format")
    sealed("corrupt-gzip", payload[:-40] + bytes(40), "bad_format")
    sealed("header-oversized", payload, "oversized", unpacked_bytes=CORPUS_LIMITS["max_unpacked_bytes"] + 1)
    sealed("header-too-many-files", payload, "too_many_files", files=CORPUS_LIMITS["max_files"] + 1)
    noise = os.urandom(CORPUS_LIMITS["max_bytes"])
    sealed("oversized-file", tar_payload([*files, ("noise.bin", noise)]), "oversized",
           unpacked_bytes=header["unpacked_bytes"] + len(noise), files=header["files"] + 1)
    zeros = bytes(CORPUS_LIMITS["max_unpacked_bytes"] * 2)
    sealed("zip-bomb", tar_payload([*files, ("zeros.bin", zeros)]), "bomb", files=header["files"] + 1)
    for name, members, reason in _member_cases(files):
        sealed(name, _tar(members), reason, files=len(members), unpacked_bytes=sum(len(d or b"") for _, d in members))
    return corpus


def check_corpus(corpus: Sequence[tuple[Path, str]], trusted_keys: Sequence[Any],
                 good: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run every bundle through ``unpack_verified`` (as a device would) and compare the reasons."""
    tmp = Path(tempfile.mkdtemp(prefix="ember-corpus-"))
    kw: dict[str, Any] = {"active_version": CORPUS_ACTIVE, "emit": lambda *a, **k: None, **CORPUS_LIMITS}
    mismatched, accepted, refused = [], [], 0
    try:
        for i, (path, expected) in enumerate(corpus):
            try:
                unpack_verified(path, tmp / str(i), trusted_keys, **kw)
                accepted.append(path.name)
            except RolloutRejected as e:
                refused += 1
                if e.reason != expected:
                    mismatched.append({"bundle": path.name, "expected": expected, "got": e.reason})
        good_ok = None
        if good is not None:
            good_ok = unpack_verified(good, tmp / "good", trusted_keys, **kw) is not None
        leftovers = sorted(p.name for p in tmp.iterdir() if p.name != "good")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"bad_bundles": len(corpus), "refused": refused, "as_expected": refused - len(mismatched),
            "mismatched": mismatched, "accepted": accepted, "good_accepted": good_ok, "leftovers": leftovers}
