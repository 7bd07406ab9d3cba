"""Ed25519 keys for signed bundles: ``keygen`` on the release machine, public keys on the devices.

The private key never leaves the machine that packs bundles; devices get the public key (a PEM file) with
their image or configuration, never over MQTT. A key is named by its id: sha256 of the raw public key, first
16 bytes, in hex.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sdk.errors import ConfigError


def key_id(public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:16]


def keygen(private_path: str | os.PathLike[str], public_path: str | os.PathLike[str]) -> str:
    """Write a new Ed25519 key pair (private key PEM, mode 0600; public key PEM); returns the key id (hex).
    Refuses to overwrite an existing file."""
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for path, data, mode in ((Path(private_path), priv, 0o600), (Path(public_path), pub, 0o644)):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise ConfigError(f"{path} already exists; keys are never overwritten (choose another folder)") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return key_id(key.public_key()).hex()


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: not a readable unencrypted PEM private key ({e}); make one with "
                          "'ember models keygen'") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 key; make one with 'ember models keygen'")
    return key


def load_public_keys(keys: Sequence[Any]) -> dict[bytes, Ed25519PublicKey]:
    """Trusted keys by key id, from PEM files, ``Ed25519PublicKey`` objects or raw 32-byte keys (one or a list)."""
    if isinstance(keys, (str, bytes, os.PathLike, Ed25519PublicKey, Ed25519PrivateKey)):
        keys = [keys]
    out = {}
    for k in keys:
        if isinstance(k, Ed25519PrivateKey):
            k = k.public_key()
        if isinstance(k, bytes) and len(k) == 32:
            k = Ed25519PublicKey.from_public_bytes(k)
        elif isinstance(k, (str, os.PathLike)):
            try:
                k = serialization.load_pem_public_key(Path(k).read_bytes())
            except (OSError, ValueError) as e:
                raise ConfigError(f"{k}: not a readable PEM public key ({e}); use the .pub file from "
                                  "'ember models keygen'") from None
        if not isinstance(k, Ed25519PublicKey):
            raise ConfigError(f"trusted key {str(k)[:60]!r} is not an Ed25519 public key")
        out[key_id(k)] = k
    return out
