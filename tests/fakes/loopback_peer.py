"""A Mastodon-like peer that is a real HTTP server on a loopback port.

Unlike ``FakeMastodon``, nothing here goes through an in-process transport: the peer
is a Starlette app served by uvicorn on ``<host>:<port>`` (``host`` any 127.0.0.x
address, so that peers can differ by host, not only by port), it discovers the
group over real HTTP (WebFinger, then the actor document), signs what it sends
with bovine, and verifies what it receives with bovine, fetching the sender's key
over real HTTP the way Mastodon does.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
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

from server.federation.keys import KeyPair, generate_rsa_keypair

AS_JSON = "application/activity+json"
AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS_CONTEXT = ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]


@dataclass
class Delivery:
    """One POST that reached the peer's inbox, with the key owner bovine verified (None: invalid)."""

    path: str
    activity: dict[str, Any]
    signer: str | None
    headers: dict[str, str]


@dataclass
class Group:
    """What the peer learned about a group by discovering it."""

    id: str
    inbox: str
    shared_inbox: str | None
    doc: dict[str, Any]


@dataclass
class LoopbackPeer:
    port: int
    name: str = "alice"
    host: str = "127.0.0.1"
    keys: KeyPair = field(default_factory=generate_rsa_keypair)
    received: list[Delivery] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # served at their ids

    def __post_init__(self) -> None:
        self.base = f"http://{self.host}:{self.port}"
        self.actor_id = f"{self.base}/users/{self.name}"
        self.key_id = f"{self.actor_id}#main-key"
        # Mastodon's instance actor, which signs what the server sends for no user (reports).
        self.instance_actor_id = f"{self.base}/actor"
        self.instance_key_id = f"{self.instance_actor_id}#main-key"
        self.app = Starlette(
            routes=[
                Route("/actor", self._instance_actor),
                Route("/users/{name}", self._actor),
                Route("/users/{name}/statuses/{sid}", self._object),
                Route("/users/{name}/inbox", self._inbox, methods=["POST"]),
                Route("/inbox", self._inbox, methods=["POST"]),
            ]
        )
        self.http = httpx.AsyncClient(timeout=10.0, trust_env=False)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    # -- the HTTP server ------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(timeout):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises what made uvicorn stop
                    raise RuntimeError("the peer's uvicorn stopped before it started")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                async with asyncio.timeout(10):
                    await self._task
            except TimeoutError:
                self._task.cancel()
        await self.http.aclose()

    # -- what the peer serves -------------------------------------------------------

    def actor_doc(self) -> dict[str, Any]:
        return {
            "@context": AS_CONTEXT,
            "id": self.actor_id,
            "type": "Person",
            "preferredUsername": self.name,
            "name": self.name.title(),
            "inbox": f"{self.actor_id}/inbox",
            "outbox": f"{self.actor_id}/outbox",
            "followers": f"{self.actor_id}/followers",
            "following": f"{self.actor_id}/following",
            "endpoints": {"sharedInbox": f"{self.base}/inbox"},
            "publicKey": {"id": self.key_id, "owner": self.actor_id, "publicKeyPem": self.keys.public_pem},
        }

    async def _actor(self, request: Request) -> Response:
        if request.path_params["name"] != self.name:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(self.actor_doc(), media_type=AS_JSON)

    def instance_actor_doc(self) -> dict[str, Any]:
        """Mastodon's ``/actor``: an Application named after the host (it shares the user's key pair here)."""
        return {
            "@context": AS_CONTEXT,
            "id": self.instance_actor_id,
            "type": "Application",
            "preferredUsername": self.host,
            "inbox": f"{self.instance_actor_id}/inbox",
            "outbox": f"{self.instance_actor_id}/outbox",
            "endpoints": {"sharedInbox": f"{self.base}/inbox"},
            "manuallyApprovesFollowers": True,
            "publicKey": {
                "id": self.instance_key_id,
                "owner": self.instance_actor_id,
                "publicKeyPem": self.keys.public_pem,
            },
        }

    async def _instance_actor(self, request: Request) -> Response:
        return JSONResponse(self.instance_actor_doc(), media_type=AS_JSON)

    async def _object(self, request: Request) -> Response:
        """A note by its id, as Mastodon serves ``/users/<name>/statuses/<id>`` to ActivityPub clients."""
        obj = self.objects.get(f"{self.base}{request.url.path}")
        if obj is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"@context": AS_CONTEXT, **obj}, media_type=AS_JSON)

    async def _retrieve_key(self, key_id: str) -> CryptographicIdentifier | None:
        """Fetch ``key_id`` over HTTP as Mastodon does; the key is the document or its ``publicKey``."""
        r = await self.http.get(key_id, headers={"Accept": AS_JSON})
        if r.status_code != 200:
            return None
        doc = r.json()
        key = doc if "publicKeyPem" in doc else doc.get("publicKey")
        if not isinstance(key, dict) or "publicKeyPem" not in key:
            return None
        return CryptographicIdentifier.from_pem(key["publicKeyPem"], key.get("owner") or doc.get("id"))

    async def _inbox(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}

        async def get_body() -> bytes:
            return body

        validate = build_validate_http_signature_raw(self._retrieve_key)
        signer = await validate(request.method, str(request.url.replace(query=None)), headers, get_body)
        self.received.append(Delivery(request.url.path, json.loads(body), signer, headers))
        return Response(status_code=202 if signer else 401)

    def of_type(self, kind: str) -> list[Delivery]:
        return [d for d in self.received if d.activity.get("type") == kind]

    # -- what the peer does ---------------------------------------------------------

    async def discover(self, acct: str) -> Group:
        """Find a group from ``name@domain`` as Mastodon does: WebFinger, self link, actor document."""
        domain = acct.rsplit("@", 1)[1]
        r = await self.http.get(
            f"http://{domain}/.well-known/webfinger",
            params={"resource": f"acct:{acct}"},
            headers={"Accept": "application/jrd+json"},
        )
        r.raise_for_status()
        jrd = r.json()
        self_link = next(
            link["href"]
            for link in jrd["links"]
            if link.get("rel") == "self"
            and link.get("type") in (AS_JSON, 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"')
        )
        r = await self.http.get(self_link, headers={"Accept": AS_JSON})
        r.raise_for_status()
        doc = r.json()
        return Group(
            id=doc["id"],
            inbox=doc["inbox"],
            shared_inbox=(doc.get("endpoints") or {}).get("sharedInbox"),
            doc=doc,
        )

    def signed_headers(self, url: str, body: bytes, *, key_id: str | None = None) -> dict[str, str]:
        """Headers for a POST of ``body`` to ``url``, signed by bovine as Mastodon signs (the user's key)."""
        host, target = host_target_from_url(url)
        helper = (
            build_signature(host, "post", target)
            .with_field("date", get_gmt_now())
            .with_field("digest", content_digest_sha256(body))
            .with_field("content-type", AS_JSON)
        )
        secret = CryptographicSecret.from_pem(key_id or self.key_id, self.keys.private_pem)
        return {**helper.headers, "signature": helper.sign_for_http_draft(secret)}

    async def signed_get(self, url: str) -> httpx.Response:
        """GET ``url`` signed by bovine, as a secure-mode (authorized fetch) Mastodon fetches."""
        host, target = host_target_from_url(url)
        helper = build_signature(host, "get", target).with_field("date", get_gmt_now())
        signature = helper.sign_for_http_draft(CryptographicSecret.from_pem(self.key_id, self.keys.private_pem))
        return await self.http.get(url, headers={**helper.headers, "signature": signature, "accept": AS_JSON})

    async def post(self, url: str, activity: dict[str, Any]) -> httpx.Response:
        """POST ``activity``, signed with its actor's key: the user's, or the instance actor's."""
        body = json.dumps(activity).encode()
        key_id = self.instance_key_id if activity.get("actor") == self.instance_actor_id else self.key_id
        return await self.http.post(url, content=body, headers=self.signed_headers(url, body, key_id=key_id))

    def follow(self, group_id: str) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{self.base}/{uuid.uuid4()}",
            "type": "Follow",
            "actor": self.actor_id,
            "object": group_id,
        }

    def undo(self, activity: dict[str, Any]) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{self.actor_id}#follows/{uuid.uuid4()}/undo",
            "type": "Undo",
            "actor": self.actor_id,
            "object": {k: activity[k] for k in ("id", "type", "actor", "object")},
        }

    def note(self, content: str, *, group: Group) -> dict[str, Any]:
        """A public Mastodon status that mentions ``group`` (so it is cc'd), served at its id from now on."""
        sid = str(uuid.uuid4().int >> 64)  # Mastodon ids are snowflake-like numbers
        uri = f"{self.actor_id}/statuses/{sid}"
        group_handle = f"@{group.doc['preferredUsername']}@{urlsplit(group.id).netloc}"
        note = {
            "id": uri,
            "type": "Note",
            "summary": None,
            "inReplyTo": None,
            "published": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "url": f"{self.base}/@{self.name}/{sid}",
            "attributedTo": self.actor_id,
            "to": [AS_PUBLIC],
            "cc": [f"{self.actor_id}/followers", group.id],
            "sensitive": False,
            "content": content,
            "contentMap": {"en": content},
            "attachment": [],
            "tag": [{"type": "Mention", "href": group.id, "name": group_handle}],
        }
        self.objects[uri] = note
        return note

    def create(self, note: dict[str, Any]) -> dict[str, Any]:
        """The Create Mastodon sends for ``note``: id ``<note>/activity``, same addressing, note embedded."""
        return {
            "@context": AS_CONTEXT,
            "id": f"{note['id']}/activity",
            "type": "Create",
            "actor": self.actor_id,
            "published": note["published"],
            "to": note["to"],
            "cc": note["cc"],
            "object": note,
        }

    def flag(self, objects: list[str], comment: str, *, to: str | None = None) -> dict[str, Any]:
        """A report as Mastodon forwards it: from the instance actor (the reporter stays unnamed),
        ``object`` the account then its posts, the comment in ``content``."""
        out: dict[str, Any] = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{self.base}/{uuid.uuid4()}",
            "type": "Flag",
            "actor": self.instance_actor_id,
            "content": comment,
            "object": objects,
        }
        if to is not None:
            out["to"] = to
        return out
