import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from server.federation.keys import KeyFormatError, generate_rsa_keypair, load_private_key, load_public_key


def test_generated_pair_loads_and_signs():
    pair = generate_rsa_keypair()
    private = load_private_key(pair.private_pem)
    public = load_public_key(pair.public_pem)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    sig = private.sign(b"hello", padding.PKCS1v15(), hashes.SHA256())
    public.verify(sig, b"hello", padding.PKCS1v15(), hashes.SHA256())  # raises if the halves differ
    assert pair.public_pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_pkcs1_public_key_loads_as_mobilizon_sends_it():
    pair = generate_rsa_keypair()
    pkcs1 = (
        load_private_key(pair.private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode()
    )
    assert pkcs1.startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert load_public_key(pkcs1).public_numbers() == load_public_key(pair.public_pem).public_numbers()


@pytest.mark.parametrize("pem", ["", "not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"])
def test_garbage_is_a_key_format_error(pem):
    with pytest.raises(KeyFormatError):
        load_public_key(pem)
