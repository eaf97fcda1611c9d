"""The inbox doors (per group and shared): cap, block, verify, store once, answer 202.

Everything slow or fallible happens later on the worker; this path only does
what it must to decide whether to accept. Nothing answered 202 is ever lost: the
activity is committed before the answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from server import metrics
from server.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, RequestTimeout, Unauthorized
from server.federation.client import FetchError
from server.federation.httpsig import IncomingRequest, SignatureError, signature_key_id, verify_request
from server.federation.objects import host_or_none, refused, same_origin
from server.federation.vocab import id_of
from server.groups.membership import get_group, group_name_from_uri
from server.inbox.store import body_text, store_activity
from server.jsondoc import JsonRefused, parse_json
from server.services import Services

log = logging.getLogger("kith.inbox")

MAX_BODY = 256 * 1024
MAX_URI = 2048  # the longest id or actor the uri columns hold (PostgreSQL refuses a longer one)
BODY_SECONDS = 30.0  # a body trickled in slower than this is refused (408), its connection freed


async def read_capped(request: Request, cap: int = MAX_BODY, deadline: float = BODY_SECONDS) -> bytes:
    """The request body, refusing (413) anything over ``cap`` without reading it all, and (408) a
    body that has not arrived within ``deadline`` seconds."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise PayloadTooLarge(f"body over {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline):
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise PayloadTooLarge(f"body over {cap} bytes")
                chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("client disconnected") from None
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {deadline:g} seconds") from None
    return b"".join(chunks)


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object with an id, a type and an actor, else 400."""
    try:
        doc = parse_json(body)
    except JsonRefused as exc:
        raise BadRequest(f"body refused: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("an activity must be a JSON object")
    if not isinstance(doc.get("type"), str):
        raise BadRequest("activity has no type")
    if not id_of(doc.get("actor")):
        raise BadRequest("activity has no actor")
    if not isinstance(doc.get("id"), str):
        raise BadRequest("activity has no id")
    if len(doc["id"]) > MAX_URI or len(id_of(doc["actor"]) or "") > MAX_URI:
        raise BadRequest(f"the activity's id or actor is longer than {MAX_URI} characters")
    return doc


def _first_values(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict, the first value of a repeated name winning.

    The same dict as ``dict(request.headers)``, built in one pass: that form looks up
    every name again in Starlette's header list.
    """
    return dict(reversed(request.headers.items()))


async def receive(request: Request, services: Services, group_name: str | None) -> Response:
    """Accept one activity at a group's inbox (``group_name``) or the shared inbox.

    Cheapest refusals first: the body's shape, the sender's origin against the policy
    (before any key fetch), then the signature, then what the activity names.
    """
    group_id = None
    if group_name is not None:
        async with services.db.read() as conn:
            group_id = (await get_group(conn, group_name)).id
    body = await read_capped(request)
    doc = parse_body(body)
    actor = _sender(doc)
    _refuse_blocked(services, actor, signature_key_id(request.headers))
    if doc["type"] == "Delete" and id_of(doc.get("object")) == actor and await services.actors.cached(actor) is None:
        # An actor we never knew deleted itself; its key is usually gone already.
        metrics.inbox("ignored")
        return Response(status_code=202)
    await _verify(request, services, body, actor)
    if doc["type"] == "Follow":
        group_id = await _followed_group(services, doc)
    # The body as received is what was digested and signed; store it, not a re-dump.
    if await store_activity(services.db, doc, actor=actor, group_id=group_id, raw=body_text(body)):
        metrics.inbox("accepted")
        services.wake.set("inbox")
    else:
        metrics.inbox("duplicate")
    return Response(status_code=202)


def _sender(doc: dict[str, Any]) -> str:
    """The activity's actor, an http(s) URL on the same origin as the activity's id, else 400."""
    actor = id_of(doc["actor"])
    assert actor is not None  # parse_body checked it
    if host_or_none(actor) is None:
        raise BadRequest("actor is not an http(s) URL")
    if not same_origin(doc["id"], actor):
        raise BadRequest("the activity id is not on the actor's server")
    return actor


def _refuse_blocked(services: Services, actor: str, key_id: str | None) -> None:
    """401 without a signature; 403 for a blocked origin or a suspended account, before any signature work."""
    if key_id is None:
        raise Unauthorized("missing signature")
    actor_host = host_or_none(actor)
    key_host = host_or_none(key_id)
    # The key is nearly always on the actor's host, which needs asking only once.
    if refused(actor, services.is_blocked) or (key_host and key_host != actor_host and services.is_blocked(key_host)):
        raise Forbidden("the domain is blocked")
    if services.blocklist.policy.actor_suspended(actor):
        raise Forbidden("the account is suspended")


async def _verify(request: Request, services: Services, body: bytes, actor: str) -> None:
    """401 unless the request is signed for this server by a key of ``actor``."""
    url = services.settings.base_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    incoming = IncomingRequest(request.method, url, _first_values(request), body)
    try:
        verified = await verify_request(incoming, services.actors.lookup_key, authority=services.settings.domain)
    except SignatureError as exc:
        metrics.signature(verified=False)
        raise Unauthorized(f"signature: {exc.reason}") from None
    except FetchError as exc:
        metrics.signature(verified=False)
        raise Unauthorized(f"could not fetch the signing key: {exc.reason}") from None
    metrics.signature(verified=verified.owner == actor)
    if verified.owner != actor:
        raise Unauthorized("the signing key does not belong to the activity's actor")


async def _followed_group(services: Services, doc: dict[str, Any]) -> int:
    """The group a Follow names (404 at once when it is not one of ours), whichever inbox it came to.

    Stored with the activity, so the Follow's handler need not look again.
    """
    target = group_name_from_uri(id_of(doc.get("object")) or "", services.links)
    if target is None:
        raise NotFound("the Follow's object is not a group here")
    async with services.db.read() as conn:
        return (await get_group(conn, target)).id


async def group_inbox(request: Request) -> Response:
    with metrics.counting_refusals():
        return await receive(request, request.app.state.services, request.path_params["name"])


async def shared_inbox(request: Request) -> Response:
    with metrics.counting_refusals():
        return await receive(request, request.app.state.services, None)


routes = [
    Route("/inbox", shared_inbox, methods=["POST"]),
    Route("/actor/inbox", shared_inbox, methods=["POST"]),
    Route("/groups/{name}/inbox", group_inbox, methods=["POST"]),
]
