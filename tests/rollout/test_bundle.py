"""Signed bundles: a good one verifies and unpacks; a changed byte, another key, a cut or an older
version is refused with its reason, before anything is extracted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sdk.errors import ConfigError, ModelError, RolloutRejected
from sdk.events import EventBus
from sdk.models.store import ModelStore
from sdk.rollout.bundle import PREFIX, keygen, pack, unpack_verified, verify
from sdk.rollout.common import is_newer, parse_version


def _reason(path: Path, pub: Path, **kw: object) -> str:
    with pytest.raises(RolloutRejected) as e:
        verify(path, [pub], **kw)  # type: ignore[arg-type]
    return e.value.reason


def test_good_bundle_verifies_and_unpacks(bundles: dict[str, Path], keys: tuple[Path, Path], tmp_path: Path) -> None:
    info = verify(bundles["1.1.0"], [keys[1]], active_version="1.0.0")
    assert (info.name, info.version, info.files) == ("tiny", "1.1.0", 2)
    unpack_verified(bundles["1.1.0"], tmp_path / "out", [keys[1]])
    store = ModelStore(tmp_path / "out")
    assert store.manifest.version == "1.1.0" and [v.tier for v in store.usable()] == ["fp32"]


def test_pack_is_reproducible(model_dir: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    a = pack(model_dir, keys[0], tmp_path / "a.bundle", version="3.0")
    b = pack(model_dir, keys[0], tmp_path / "b.bundle", version="3.0")
    assert a.read_bytes() == b.read_bytes()  # Ed25519 signatures are deterministic, the tar has no times


def test_every_flipped_byte_region_is_refused(bundles: dict[str, Path], keys: tuple[Path, Path], tmp_path: Path) -> None:
    data = bundles["1.1.0"].read_bytes()
    hl = int.from_bytes(data[88:92], "big")
    cases = {0: "bad_format", 10: "untrusted_key", 30: "bad_signature", PREFIX + 5: "bad_signature",
             PREFIX + hl + 20: "tampered", len(data) - 1: "tampered"}
    for offset, reason in cases.items():
        bad = bytearray(data)
        bad[offset] ^= 0x01
        p = tmp_path / f"flip{offset}.bundle"
        p.write_bytes(bytes(bad))
        assert _reason(p, keys[1]) == reason, offset


def test_wrong_key_truncated_unsigned(bundles: dict[str, Path], keys: tuple[Path, Path], tmp_path: Path) -> None:
    keygen(tmp_path / "other.key", tmp_path / "other.pub")
    assert _reason(bundles["1.1.0"], tmp_path / "other.pub") == "untrusted_key"
    data = bundles["1.1.0"].read_bytes()
    for n in (4, 50, PREFIX + 3, len(data) - 100):
        (tmp_path / "cut.bundle").write_bytes(data[:n])
        assert _reason(tmp_path / "cut.bundle", keys[1]) == "truncated", n
    hl = int.from_bytes(data[88:92], "big")
    (tmp_path / "plain.tgz").write_bytes(data[PREFIX + hl:])  # the bare payload: a .tar.gz
    assert _reason(tmp_path / "plain.tgz", keys[1]) == "unsigned"


def test_downgrade_refused_unless_explicit(bundles: dict[str, Path], keys: tuple[Path, Path]) -> None:
    assert _reason(bundles["1.0.0"], keys[1], active_version="1.1.0") == "downgrade"
    assert _reason(bundles["1.1.0"], keys[1], active_version="1.1") == "downgrade"  # equal is no upgrade
    assert verify(bundles["1.0.0"], [keys[1]], active_version="1.1.0", allow_downgrade=True).version == "1.0.0"
    assert verify(bundles["2.0.0"], [keys[1]], active_version="1.10.0").version == "2.0.0"


def test_limits_and_events(bundles: dict[str, Path], keys: tuple[Path, Path]) -> None:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    with pytest.raises(RolloutRejected, match="oversized"):
        verify(bundles["1.1.0"], [keys[1]], max_bytes=1000, emit=bus.publish, deployment="d-7")
    assert _reason(bundles["1.1.0"], keys[1], max_unpacked_bytes=1000) == "oversized"
    assert _reason(bundles["1.1.0"], keys[1], max_files=1) == "too_many_files"
    assert seen[0].kind == "rollout.rejected" and seen[0].data["reason"] == "oversized"
    assert seen[0].data["deployment"] == "d-7"


def test_version_rule() -> None:
    assert parse_version("1.2") == parse_version("1.2.0") < parse_version("1.2.1") < parse_version("1.10")
    assert is_newer("1.0.1", "1.0") and not is_newer("1.0", "1.0.0") and is_newer("0.1", None)
    for bad in ("1.02", "v1", "1.2.3.4.5", "", "1..2", "1.2-rc1"):
        with pytest.raises(RolloutRejected, match="bad_version"):
            parse_version(bad)


def test_pack_refuses_unusable_folders(model_dir: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    m = json.loads((model_dir / "manifest.json").read_text())
    m["variants"][0]["sha256"] = "0" * 64
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(m))
    (tmp_path / "m" / "model.fp32.onnx").write_bytes((model_dir / "model.fp32.onnx").read_bytes())
    with pytest.raises(ModelError, match="sha256"):
        pack(tmp_path / "m", keys[0], version="1.0")
    with pytest.raises(ConfigError, match="keygen"):
        pack(model_dir, keys[1], version="1.0")  # a public key is no signing key
    with pytest.raises(ConfigError, match="already exists"):
        keygen(keys[0], tmp_path / "x.pub")


def test_cli_keygen_and_pack(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sdk.cli import main

    assert main(["models", "keygen", "--out", str(tmp_path / "k")]) == 0
    assert oct((tmp_path / "k" / "signing.key").stat().st_mode & 0o777) == "0o600"
    out = tmp_path / "m.bundle"
    assert main(["models", "pack", str(model_dir), "--key", str(tmp_path / "k" / "signing.key"),
                 "--version", "2.1", "--out", str(out)]) == 0
    assert "tiny 2.1" in capsys.readouterr().out
    assert verify(out, [tmp_path / "k" / "signing.pub"], active_version="2.0.9").version == "2.1"
    pub = str(tmp_path / "k" / "signing.pub")
    assert main(["models", "verify-bundle", str(out), "--trusted", pub]) == 0
    assert main(["models", "verify-bundle", str(out), "--trusted", pub, "--active", "2.1.0"]) == 1
    assert "REFUSED downgrade" in capsys.readouterr().out
    assert main(["models", "keygen", "--out", str(tmp_path / "k")]) == 2  # never overwrites a key
    assert main(["models", "pack", str(model_dir), "--key", str(tmp_path / "k" / "signing.key"),
                 "--version", "v2"]) == 2
    assert "1 to 4 dotted integers" in capsys.readouterr().err


def test_signed_garbage_is_always_a_typed_refusal(bundles: dict[str, Path], keys: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    """A trusted signer's corrupt payloads (random bytes changed in the gzip or in the tar) end in
    RolloutRejected or a good install, never in another exception, and nothing stays on disk when refused."""
    import gzip
    import random

    from sdk.rollout.bundle import seal
    from sdk.rollout.keys import load_private_key

    good = bundles["1.1.0"].read_bytes()
    hl = int.from_bytes(good[88:92], "big")
    header, payload = json.loads(good[PREFIX:PREFIX + hl]), good[PREFIX + hl:]
    raw, sk, rng = gzip.decompress(payload), load_private_key(keys[0]), random.Random(0)
    refused = 0
    for i in range(100):
        data = bytearray(payload if i % 2 else raw)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data) if i % 2 else 2048)] = rng.randrange(256)
        p = bytes(data) if i % 2 else gzip.compress(bytes(data))
        out = seal(tmp_path / "f.bundle", sk, p, **{k: header[k] for k in ("name", "version", "unpacked_bytes", "files")})
        try:
            unpack_verified(out, tmp_path / "x", [keys[1]], emit=lambda *a, **k: None)
        except RolloutRejected:
            refused += 1
            assert not (tmp_path / "x").exists()
        else:
            assert ModelStore(tmp_path / "x").usable()
        shutil.rmtree(tmp_path / "x", ignore_errors=True)
    assert refused >= 80
