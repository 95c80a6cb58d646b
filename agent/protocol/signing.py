"""Ed25519 keys for model pushes: the host signs manifests, devices verify them.

Keys are PEM files (`signing.key`, PKCS#8, mode 0600; `signing.pub`, SubjectPublicKeyInfo).
A key is named by its id: the first 16 hex digits of the SHA-256 of the raw public key.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ConfigError, SignatureError

PRIVATE_NAME = "signing.key"
PUBLIC_NAME = "signing.pub"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keys(directory: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new key pair into `directory`; refuses to replace an existing private key."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    if priv_path.exists() and not overwrite:
        raise ConfigError(f"{priv_path} already exists (refusing to replace a signing key)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read trusted key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return key


def trusted_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Trusted public keys by key id."""
    keys = [load_public_key(p) for p in paths]
    return {key_id(k): k for k in keys}


def sign(data: bytes, key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(data)).decode("ascii")


def verify(data: bytes, signature_b64: str, kid: str, trusted: Mapping[str, Ed25519PublicKey]) -> None:
    """Raise `SignatureError` unless `signature_b64` is a valid signature of `data` by trusted key `kid`."""
    if not signature_b64:
        raise SignatureError("manifest is not signed")
    key = trusted.get(kid)
    if key is None:
        raise SignatureError(f"manifest signed by untrusted key {kid!r}")
    try:
        sig = base64.b64decode(signature_b64, validate=True)
        key.verify(sig, data)
    except (InvalidSignature, ValueError):
        raise SignatureError("manifest signature is invalid") from None
