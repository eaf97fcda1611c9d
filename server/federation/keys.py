"""RSA key pairs and PEM handling.

Remote servers publish public keys as SPKI (``BEGIN PUBLIC KEY``, Mastodon, Lemmy)
or PKCS#1 (``BEGIN RSA PUBLIC KEY``, Mobilizon); both load here. Ed25519 keys (used
by RFC 9421 signers such as Fedify) load through the same SPKI path.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class KeyFormatError(ValueError):
    """A PEM that is not a key we can use."""


@dataclass(frozen=True)
class KeyPair:
    """A key pair as stored in the database: both halves as PEM text."""

    private_pem: str
    public_pem: str


def generate_rsa_keypair(bits: int = 2048) -> KeyPair:
    """Make a new RSA key pair (2048 bits, as Mastodon uses) as PEM text."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return KeyPair(private_pem=private_pem, public_pem=public_pem_of(key))


def public_pem_of(key: PrivateKey) -> str:
    """The SPKI PEM of a private key's public half."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def load_private_key(pem: str | bytes) -> PrivateKey:
    """Load a PKCS#8 or PKCS#1 private key PEM."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a usable private key: {exc}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise KeyFormatError("only RSA and Ed25519 private keys are supported")
    return key


def load_public_key(pem: str | bytes) -> PublicKey:
    """Load a public key PEM in SPKI or PKCS#1 form (Mobilizon sends the latter)."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        # cryptography reads both "BEGIN PUBLIC KEY" (SPKI) and "BEGIN RSA PUBLIC KEY" (PKCS#1).
        key = serialization.load_pem_public_key(data.strip())
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a usable public key: {exc}") from None
    if not isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise KeyFormatError("only RSA and Ed25519 public keys are supported")
    return key
