"""Pre-generated RSA keys for the local actors a test creates (RSA-2048 generation costs ~0.1-0.4 s each).

Every test creates the instance actor and usually a few users and groups, each with a new
key pair from ``server.local_actors.new_keypair``. The conftest fixture ``local_keys`` hands
them keys from this pool instead: real RSA-2048 pairs made by Kith's own
``generate_rsa_keypair``, generated once per test process and reused from test to test.
Within one test every local actor still gets a key no other actor of that test has, so
"each actor signs with its own key" stays true. Signing and verification are untouched.

Tests of key generation itself call ``generate_rsa_keypair`` directly; a test that must
see ``new_keypair`` generate afresh is marked ``@pytest.mark.full_cost``.
Remote actors of the fake servers draw from a second pool, ``REMOTE_KEYS``, restarted with
it: every user a test adds, on any fake server, signs with a key of its own.
"""

from __future__ import annotations

import asyncio

from server.federation.keys import KeyPair, generate_rsa_keypair


class KeyPool:
    """Hands out pre-generated key pairs in order; ``restart`` at the start of each test."""

    def __init__(self) -> None:
        self.keys: list[KeyPair] = []
        self.used = 0

    def restart(self) -> None:
        self.used = 0

    def take(self) -> KeyPair:
        """The next pair no one in this test has had yet."""
        while len(self.keys) <= self.used:
            self.keys.append(generate_rsa_keypair())
        self.used += 1
        return self.keys[self.used - 1]

    async def new_keypair(self) -> tuple[str, str]:
        """Drop-in for ``server.local_actors.new_keypair``: the next unused pair of this test."""
        if self.used == len(self.keys):
            self.keys.append(await asyncio.to_thread(generate_rsa_keypair))
        pair = self.take()
        return pair.private_pem, pair.public_pem


LOCAL_KEYS = KeyPool()  # Kith's local actors
REMOTE_KEYS = KeyPool()  # the users of the fake remote servers
