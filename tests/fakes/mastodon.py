"""A fake Mastodon-like server, in-process, reached through the ``Network`` transport.

It serves Person actors with real keys, signs what it sends as Mastodon does
(``(request-target) host date digest content-type``, rsa-sha256) — with our signer or
with bovine's, an independent implementation — and verifies what it receives the
way Mastodon does, with bovine's checker and the sender's key fetched over HTTP.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from bovine.clients.utils import host_target_from_url
from bovine.crypto import build_validate_http_signature_raw
from bovine.crypto.helper import content_digest_sha256
from bovine.crypto.http_signature import build_signature
from bovine.crypto.types import CryptographicIdentifier, CryptographicSecret
from bovine.utils import get_gmt_now
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.federation.httpsig import sign_request
from server.federation.keys import KeyPair, generate_rsa_keypair
from tests.fakes.keys import REMOTE_KEYS
from tests.fakes.network import Network


def remote_keypair(i: int) -> KeyPair:
    """The ``i``-th pre-generated remote key of this session (``add_user`` takes the next unused one)."""
    while len(REMOTE_KEYS.keys) <= i:
        REMOTE_KEYS.keys.append(generate_rsa_keypair())
    return REMOTE_KEYS.keys[i]


@dataclass
class Received:
    """One activity that reached the fake's inbox, and whose signature it checked."""

    path: str
    activity: dict[str, Any]
    signer: str | None  # the key owner bovine verified, None when verification failed
    headers: dict[str, str]


@dataclass
class FakeMastodon:
    host: str
    network: Network
    signer: str = "ours"  # "ours" or "bovine"
    users: dict[str, KeyPair] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    status: int = 202  # what the inbox answers
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # served at their ids

    def __post_init__(self) -> None:
        self.base = f"https://{self.host}"
        self.app = Starlette(
            routes=[
                Route("/users/{name}", self._actor),
                Route("/users/{name}/inbox", self._inbox, methods=["POST"]),
                Route("/inbox", self._inbox, methods=["POST"]),
                Route("/notes/{nid}", self._object),
            ]
        )
        self.network.add_app(self.host, self.app)
        self.http = httpx.AsyncClient(transport=self.network)

    def add_user(self, name: str, keys: KeyPair | None = None) -> str:
        self.users[name] = keys or REMOTE_KEYS.take()  # a key of its own, even across fake servers
        return self.actor_uri(name)

    def actor_uri(self, name: str) -> str:
        return f"{self.base}/users/{name}"

    def actor_doc(self, name: str) -> dict[str, Any]:
        uri = self.actor_uri(name)
        return {
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": uri,
            "type": "Person",
            "preferredUsername": name,
            "name": name.title(),
            "inbox": f"{uri}/inbox",
            "outbox": f"{uri}/outbox",
            "followers": f"{uri}/followers",
            "endpoints": {"sharedInbox": f"{self.base}/inbox"},
            "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": self.users[name].public_pem},
        }

    async def _actor(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.users:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(self.actor_doc(name), media_type="application/activity+json")

    async def _object(self, request: Request) -> Response:
        obj = self.objects.get(str(request.url.replace(query=None)))
        if obj is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(obj, media_type="application/activity+json")

    def note(
        self,
        name: str,
        content: str,
        *,
        to_group: str | None = None,
        in_reply_to: str | None = None,
        public: bool = True,
        mention: bool = True,
    ) -> dict[str, Any]:
        """A Mastodon-style Note by ``name``, served at its id; mentions ``to_group`` as Mastodon users do."""
        uri = f"{self.base}/notes/{uuid.uuid4().hex[:12]}"
        author = self.actor_uri(name)
        public_ns = "https://www.w3.org/ns/activitystreams#Public"
        to = [public_ns] if public else [f"{author}/followers"]
        cc = [f"{author}/followers"] if public else []
        tags = []
        if to_group:
            cc.append(to_group)
            if mention:
                tags.append({"type": "Mention", "href": to_group, "name": "@" + to_group.rsplit("/", 1)[1]})
        note = {
            "id": uri,
            "type": "Note",
            "attributedTo": author,
            "content": content,
            "published": "2026-11-26T10:00:00Z",
            "to": to,
            "cc": cc,
            "tag": tags,
            "url": uri,
        }
        if in_reply_to:
            note["inReplyTo"] = in_reply_to
        self.objects[uri] = note
        return note

    def create(self, name: str, note: dict[str, Any]) -> dict[str, Any]:
        """The Create Mastodon sends for ``note`` (same addressing, object embedded)."""
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": note["id"] + "/activity",
            "type": "Create",
            "actor": self.actor_uri(name),
            "published": note["published"],
            "to": note["to"],
            "cc": note["cc"],
            "object": note,
        }

    async def _inbox(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}

        async def retrieve(key_id: str) -> CryptographicIdentifier | None:
            r = await self.http.get(key_id.split("#")[0], headers={"Accept": "application/activity+json"})
            if r.status_code != 200:
                return None
            key = r.json()["publicKey"]
            return CryptographicIdentifier.from_pem(key["publicKeyPem"], key["owner"])

        async def get_body() -> bytes:
            return body

        validate = build_validate_http_signature_raw(retrieve)
        url = str(request.url.replace(query=None))
        signer = await validate(request.method, url, headers, get_body)
        self.received.append(Received(request.url.path, json.loads(body), signer, headers))
        return Response(status_code=self.status if signer else 401)

    def new_id(self, kind: str = "activities") -> str:
        return f"{self.base}/{kind}/{uuid.uuid4()}"

    def signed_headers(self, name: str, url: str, body: bytes) -> dict[str, str]:
        """Headers for a POST of ``body`` to ``url`` signed by user ``name``, as Mastodon signs."""
        key_id = f"{self.actor_uri(name)}#main-key"
        keys = self.users[name]
        if self.signer == "bovine":
            host, target = host_target_from_url(url)
            helper = (
                build_signature(host, "post", target)
                .with_field("date", get_gmt_now())
                .with_field("digest", content_digest_sha256(body))
                .with_field("content-type", "application/activity+json")
            )
            signature = helper.sign_for_http_draft(CryptographicSecret.from_pem(key_id, keys.private_pem))
            return {**helper.headers, "signature": signature}
        headers = {"content-type": "application/activity+json"}
        headers.update(sign_request("POST", url, headers, body, key_id=key_id, private_key_pem=keys.private_pem))
        return headers

    async def post(self, client: httpx.AsyncClient, name: str, url: str, activity: dict[str, Any]) -> httpx.Response:
        """Deliver ``activity`` from user ``name`` to ``url`` through ``client``, signed."""
        body = json.dumps(activity).encode()
        return await client.post(url, content=body, headers=self.signed_headers(name, url, body))

    async def signed_get(self, client: httpx.AsyncClient, name: str, url: str) -> httpx.Response:
        """GET ``url`` through ``client`` as user ``name``, signed as Mastodon's secure mode signs fetches."""
        key_id = f"{self.actor_uri(name)}#main-key"
        headers = {"accept": "application/activity+json"}
        headers.update(
            sign_request("GET", url, headers, b"", key_id=key_id, private_key_pem=self.users[name].private_pem)
        )
        return await client.get(url, headers=headers)

    def follow(self, name: str, group_uri: str) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{self.base}/{uuid.uuid4()}",
            "type": "Follow",
            "actor": self.actor_uri(name),
            "object": group_uri,
        }

    def undo(self, name: str, activity: dict[str, Any]) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{self.actor_uri(name)}#follows/{uuid.uuid4()}/undo",
            "type": "Undo",
            "actor": self.actor_uri(name),
            "object": {k: activity[k] for k in ("id", "type", "actor", "object")},
        }

    def of_type(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.activity.get("type") == kind]
