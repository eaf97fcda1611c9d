"""The group speaks: a public post authored by the group actor itself, sent to every member server.

A leader posts as the group (``kith group post``, the console's "Post as the group"); later
a schedule (recurring threads, no human behind it) and polls (a ``Question``, re-sent as
``Update(Question)``) post through the same ``speak``. The post is stored as a thread root
of the group (``author_uri`` the group, ``author_id`` NULL), so it shows on the group page and
in the API, and replies to it thread under it through the ordinary intake.

It goes out as the group's own ``Create``, addressed as Mastodon addresses a public status
(to Public, cc the group's followers), once per member server (shared inbox first) through
the fan-out that carries the group's Announces. Not also wrapped in an ``Announce``:
FEP-1b12 has a group wrap the activities it *receives*, so that followers can check the group
approved them; here the group is the author, and its own signature on the ``Create`` says as
much. Mastodon, Misskey, Pleroma/Akkoma and GoToSocial show a followed actor's ``Create``
directly. Lemmy would refuse it either way: its ``Create`` of a post must come from a
``Person`` (and the post be attributed to one), so an ``Announce(Create)`` from the group
gains Lemmy nothing and costs every member server a second request.

Both the ``Create`` and the object are stored (``federation.outbound``) and dereference at
their ids (``/activities/UUID``), public to anyone, as every activity the group sends.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BadRequest, Forbidden
from server.federation import activities, outbound
from server.federation.html import sanitize_html
from server.federation.objects import POST_TYPES, parse_post
from server.federation.serialize import text_to_html
from server.federation.vocab import CONTEXT
from server.groups import posts
from server.groups.fanout import queue_fanout
from server.groups.membership import Group, get_group
from server.groups.posts import Post
from server.moderation import authority, modlog
from server.services import Services
from server.types import utcnow

# A group's announcement is longer than a status (Mastodon's 500) and shorter than an essay:
# Lemmy caps a post's body at 10,000; half of that reads whole in a timeline.
MAX_TEXT = 5_000
MAX_TITLE = 200  # Lemmy's limit on a post's title
SYSTEM = "system"  # who the mod log names when the group speaks by itself (a schedule)


def check_text(text: str, title: str | None) -> tuple[str, str | None]:
    """The post's text and title as they will be sent, or ``BadRequest`` saying what is wrong."""
    text = (text or "").strip()
    title = " ".join((title or "").split()) or None  # one line
    if not text:
        raise BadRequest("the post's text is empty")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"the post's text is {len(text)} characters; at most {MAX_TEXT}")
    if title is not None and len(title) > MAX_TITLE:
        raise BadRequest(f"the title is {len(title)} characters; at most {MAX_TITLE}")
    if "\x00" in text or (title and "\x00" in title):
        raise BadRequest("the post's text contains a NUL character")
    return text, title


def content_of(body_html: str, title: str | None) -> str:
    """The object's ``content``: the title as its first, bold paragraph, then the body.

    Mastodon shows a ``Note``'s content and drops its ``name``, so a title travels in both:
    ``name`` for forum software (and Kith's own pages), the first line for everyone else.
    """
    if not title:
        return body_html
    return f"<p><strong>{html.escape(title)}</strong></p>{body_html}"


async def may_speak(conn: AsyncConnection, group: Group, user: str) -> None:
    """``Forbidden`` unless the local account ``user`` is the group's owner or one of its moderators.

    Stricter than moderating: an instance admin who does not lead the group does not speak for it.
    """
    if await authority.local_role(conn, group.id, user) not in authority.ROLES:
        raise Forbidden(f"{user} is not the owner or a moderator of {group.name}")


async def speak(
    conn: AsyncConnection,
    services: Services,
    group: Group,
    by_user: str | None,
    *,
    text: str,
    name: str | None = None,
    pin: bool = False,
    kind: str = "Note",
    extra: Mapping[str, Any] | None = None,
) -> Post:
    """Post ``text`` (plain text) as ``group``, in the caller's transaction; the stored thread root.

    ``by_user`` is the leader who speaks (checked: owner or moderator), or None for the
    group itself (a schedule; the mod log says ``system``). ``name`` is the thread's title;
    ``pin`` adds it to the group's featured collection. ``kind`` and ``extra`` make it
    another post type with fields of its own (a ``Question`` with ``oneOf``, ``endTime``,
    ``votersCount``). The caller wakes the worker (``services.wake``) once it commits.
    """
    if kind not in POST_TYPES:
        raise ValueError(f"{kind!r} is not a post type")
    if by_user is not None:
        await may_speak(conn, group, by_user)
    text, name = check_text(text, name)
    group_uri = services.links.group(group.name)
    body_html = text_to_html(text, links=True)
    now = utcnow()
    create = activities.public_post(
        services.links.base,
        actor=group_uri,
        kind=kind,
        content_html=content_of(body_html, name),
        name=name,
        published=now,
        extra=dict(extra or {}),
    )
    obj = create["object"]
    # Kith's pages show the title above the body: the row keeps the body alone.
    env = dataclasses.replace(parse_post(obj), content_html=sanitize_html(body_html))
    post = await posts.insert_post(conn, group_id=group.id, env=env, raw=obj, author_id=None, parent=None)
    # Its page's address needs the row's id: set on the object before anything is stored or sent.
    obj["url"] = services.links.thread(group.name, post.id)
    await posts.set_link(conn, post.id, obj["url"], obj)
    await outbound.store(conn, {"@context": CONTEXT, **obj}, actor_id=group.id, public=True, post_id=post.id)
    sent = [create]
    who = by_user or SYSTEM
    await modlog.write(conn, group_id=group.id, moderator=who, action="post", target=obj["id"], reason=name or "")
    if pin:
        await posts.set_pinned(conn, post.id, True)
        await modlog.write(conn, group_id=group.id, moderator=who, action="pin", target=obj["id"])
        # After the Create, on the same connection: the member server knows the post when the Add comes.
        sent.append(activities.featured_add(services.links.base, actor=group_uri, obj=obj["id"]))
    await queue_fanout(conn, activities=sent, group_id=group.id, public=True, post_id=post.id)
    stored = await posts.find_post_by_id(conn, post.id)
    assert stored is not None  # inserted above, in this transaction
    return stored


async def post_as_group(
    services: Services,
    group_name: str,
    by_user: str,
    *,
    text: str,
    title: str | None = None,
    pin: bool = False,
) -> Post:
    """``speak`` in a transaction of its own, by group name, for the command line and the console."""
    async with services.db.transaction() as conn:
        group = await get_group(conn, group_name)
        post = await speak(conn, services, group, by_user, text=text, name=title, pin=pin)
    services.wake.set()
    return post
