"""Ed25519 signing for audit checkpoints and deletion certificates.

One key per deployment. It comes from ``EXPUNGE_SIGNING_KEY`` (PEM, or base64 of the raw
32-byte seed); outside production, when that is unset, it is generated once and kept in
``$EXPUNGE_HOME/signing.key`` (mode 0600) so the embedded default needs no setup.

What is signed is always ``context ‖ 0x0A ‖ canonical form of the document``: the context
names the kind of document, so a signature over a checkpoint can never be replayed as one
over a certificate (the same key signs both). The context also names the canonical form:
certificates (``expunge.certificate.v2``) use RFC 8785 (JCS), so any JCS library (the
dashboard's ``canonicalize``) reproduces the signed bytes; audit checkpoints and v1
certificates keep ``canonical_json`` (Python's sorted compact ``json.dumps``), which only
verifies them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.settings import Settings

ALGORITHM = "Ed25519"
CHECKPOINT_CONTEXT = "expunge.audit_checkpoint.v1"
CERTIFICATE_CONTEXT = "expunge.certificate.v2"  # RFC 8785 canonical form
CERTIFICATE_CONTEXT_V1 = "expunge.certificate.v1"  # canonical_json; verified, never issued
CERTIFICATE_CONTEXTS = (CERTIFICATE_CONTEXT, CERTIFICATE_CONTEXT_V1)
KEY_FILE = "signing.key"


class SigningKeyError(ValueError):
    """The configured key (or a public key handed to a verifier) cannot be used."""


# --------------------------------------------------------------------------- canonical JSON


def _reject_non_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("canonical JSON has no NaN or Infinity")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"canonical JSON object keys must be strings, got {key!r}")
            _reject_non_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_non_finite(item)


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: the same document always has one encoding.

    Signatures and hashes are taken over these bytes, so any verifier that re-encodes the
    parsed JSON the same way gets the same bytes back.
    """
    _reject_non_finite(obj)  # allow_nan=False alone would accept non-string keys silently
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def jcs(obj: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of ``obj``: what v2 certificates sign
    and what the API serves, byte for byte. Raises ``ValueError`` on what JSON cannot hold
    exactly (NaN, Infinity, integers beyond 2**53, non-string keys)."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"no RFC 8785 form: {exc}") from exc


# Contexts whose documents are canonicalised by RFC 8785; every other keeps canonical_json.
JCS_CONTEXTS = frozenset({CERTIFICATE_CONTEXT})


def canonical_for(context: str) -> Callable[[Any], bytes]:
    """The canonical encoder a signing context uses (its signature and its digest)."""
    return jcs if context in JCS_CONTEXTS else canonical_json


def signed_message(context: str, document: Any) -> bytes:
    """The exact bytes a signature covers: the context, a newline, the canonical form."""
    if "\n" in context:
        raise ValueError("a signing context cannot contain a newline")
    return context.encode("utf-8") + b"\n" + canonical_for(context)(document)


def canonical_document(signed: dict[str, Any]) -> bytes:
    """A signed document's canonical bytes, in the form its own signature context names:
    what is stored, served and hashed (``X-Certificate-SHA256``)."""
    block = signed.get("signature")
    context = block.get("context") if isinstance(block, dict) else None
    return canonical_for(str(context))(signed)


# --------------------------------------------------------------------------- keys


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256(raw public key): short enough to print, long enough
    that two deployments' keys never collide by accident."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def public_key_id(pem: str | bytes) -> str:
    return key_id_of(load_public_key(pem))


@dataclass(frozen=True)
class Signer:
    """A deployment's signing key."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, value: str | bytes) -> Signer:
        """A PEM private key (PKCS#8), or base64 of the raw 32-byte Ed25519 seed."""
        data = value.encode() if isinstance(value, str) else value
        data = data.strip()
        if data.startswith(b"-----BEGIN"):
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError) as exc:
                raise SigningKeyError(f"EXPUNGE_SIGNING_KEY is not a usable PEM: {exc}") from exc
            if not isinstance(key, Ed25519PrivateKey):
                raise SigningKeyError(
                    f"EXPUNGE_SIGNING_KEY must be Ed25519, got {type(key).__name__}"
                )
            return cls(key)
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error as exc:
            raise SigningKeyError("EXPUNGE_SIGNING_KEY is neither PEM nor base64") from exc
        if len(raw) != 32:
            raise SigningKeyError(
                f"EXPUNGE_SIGNING_KEY decodes to {len(raw)} bytes; a raw Ed25519 key has 32"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def verify(public_pem: str | bytes | Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is the key's signature over ``data``; a bad key raises."""
    key = public_pem if isinstance(public_pem, Ed25519PublicKey) else load_public_key(public_pem)
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _write_private(path: Path, data: bytes) -> None:
    """Create the key file 0600 from the start (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _load_or_create(path: Path) -> Signer:
    if path.exists():
        return Signer.from_text(path.read_bytes())
    signer = Signer.generate()
    try:
        _write_private(path, signer.private_key_pem())
    except FileExistsError:  # another process won the race: use its key
        return Signer.from_text(path.read_bytes())
    return signer


@lru_cache(maxsize=8)
def _signer_for(configured: str | None, home: str, env: str) -> Signer:
    if configured:
        return Signer.from_text(configured)
    if env == "production":
        raise SigningKeyError("EXPUNGE_SIGNING_KEY must be set in production")
    return _load_or_create(Path(home) / KEY_FILE)


def load_signer(settings: Settings) -> Signer:
    """The deployment's signer (cached per configuration)."""
    return _signer_for(settings.signing_key, str(settings.home), settings.env)


def split_pem_blocks(text: str | None) -> list[str]:
    """The PEM blocks in ``text`` (several keys pasted into one setting or file)."""
    blocks, current = [], []
    for line in (text or "").splitlines():
        if line.startswith("-----BEGIN"):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith("-----END"):
                blocks.append("\n".join(current) + "\n")
                current = []
    return blocks


def trusted_public_keys(settings: Settings) -> list[str]:
    """This deployment's public key, then those it signed with before a rotation."""
    previous = split_pem_blocks(settings.signing_previous_keys)
    for pem in previous:
        load_public_key(pem)  # a broken setting should say so, not fail verification
    return [load_signer(settings).public_key_pem(), *previous]


# --------------------------------------------------------------------------- documents


def signature_block(signer: Signer, context: str, document: Any) -> dict[str, str]:
    return {
        "algorithm": ALGORITHM,
        "context": context,
        "key_id": signer.key_id,
        "value": base64.b64encode(signer.sign(signed_message(context, document))).decode(),
    }


def sign_document(signer: Signer, document: dict[str, Any], context: str) -> dict[str, Any]:
    """Return ``document`` with a ``signature`` member over everything else in it."""
    if "signature" in document:
        raise ValueError("the document already has a 'signature' member")
    return {**document, "signature": signature_block(signer, context, document)}


def verify_document(
    signed: dict[str, Any], public_pem: str | bytes, context: str | Iterable[str]
) -> tuple[bool, str]:
    """Check a document made by ``sign_document``: (ok, why not). ``context`` may list
    several accepted contexts (``CERTIFICATE_CONTEXTS``: v2 and the older v1); each
    verifies under its own canonical form."""
    accepted = (context,) if isinstance(context, str) else tuple(context)
    block = signed.get("signature")
    if not isinstance(block, dict):
        return False, "the document has no 'signature' object"
    if block.get("algorithm") != ALGORITHM:
        return False, f"unsupported signature algorithm {block.get('algorithm')!r}"
    if block.get("context") not in accepted:
        expected = " or ".join(repr(c) for c in accepted)
        return False, f"signed for {block.get('context')!r}, expected {expected}"
    context = str(block["context"])
    key = load_public_key(public_pem)
    if block.get("key_id") != key_id_of(key):
        return False, (
            f"signed by key {block.get('key_id')!r}, but the public key given is {key_id_of(key)!r}"
        )
    try:
        signature = base64.b64decode(str(block.get("value", "")), validate=True)
    except binascii.Error:
        return False, "the signature value is not base64"
    body = {k: v for k, v in signed.items() if k != "signature"}
    try:
        message = signed_message(context, body)
    except ValueError as exc:
        return False, f"the document cannot be canonicalised: {exc}"
    if not verify(key, message, signature):
        return False, "the signature does not match the document (it was altered or forged)"
    return True, "signature valid"
