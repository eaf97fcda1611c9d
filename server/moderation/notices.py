"""Moderation notices: what a group's moderators are told of, the moment it happens.

A report about the group's content, a post held for approval, a follow request waiting
(manual groups) or an alarm (crowd control) becomes one ``mod_notices`` row, written in
the transaction of the event itself, so nothing is told that did not happen and nothing
that happened goes untold. Each moderator with a fediverse account (a listed remote
moderator, or a local leader who ran ``kith user link``) gets a ``mod_notice_sends`` row,
a queue row that the worker gathers into one direct message per moderator per minute
(``moderation/digests.py``). Local leaders read the same events in the console's queue
(alarms from here; reports, held posts and follow requests from their own tables).

The one owner of ``mod_notices`` and ``mod_notice_sends`` (``digests.py`` marks sends as
sent through ``mark_sent``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.accounts import set_linked_actor
from server.errors import BadRequest
from server.federation.actors import InvalidActor
from server.federation.client import FetchError
from server.federation.html import excerpt
from server.groups.membership import Group
from server.moderation.authority import notice_recipients
from server.rows import record, record_or_none
from server.services import Services
from server.tables import mod_notice_sends, mod_notices
from server.types import utcnow

KINDS = ("report", "held", "follow", "alarm")
MAX_REASON = 500
MAX_EXCERPT = 200
ALARMS_SHOWN_FOR = timedelta(days=2)  # the console shows an undismissed alarm this long


@dataclass(frozen=True)
class Notice:
    """An event to tell a group's moderators of, and the one item a command answering it acts on.

    ``kind``: ``report`` (``report_id``, and ``post_uri`` when it names a post of ours),
    ``held`` (``post_uri``), ``follow`` (``follow_actor``) or ``alarm`` (no item).
    ``excerpt`` is remote HTML or plain text: it is reduced to a short plain text here.
    ``reporter`` (reports) is shown only to the moderators ``digests.reporter_shown`` allows.
    """

    kind: str
    reason: str = ""
    post_uri: str | None = None
    report_id: int | None = None
    follow_actor: str | None = None
    author: str | None = None  # whose post or follow it is: a handle or an actor URI
    excerpt: str = ""
    link: str | None = None
    reporter: str | None = None


@dataclass(frozen=True, slots=True)
class ModNotice:
    """A stored notice."""

    id: int
    group_id: int
    kind: str
    post_uri: str | None
    report_id: int | None
    follow_actor: str | None
    author: str | None
    reason: str
    excerpt: str
    link: str | None
    reporter: str | None
    created_at: datetime
    dismissed_at: datetime | None


@dataclass(frozen=True, slots=True)
class NoticeSend:
    """One notice on its way to one moderator (a queue row; ``digest_id`` once it went out)."""

    id: int
    notice_id: int
    group_id: int
    recipient: str
    digest_id: int | None
    ref: int | None
    state: str
    attempts: int
    next_attempt_at: datetime
    lease_until: datetime | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


async def notify_moderators(conn: AsyncConnection, services: Services, group: Group, notice: Notice) -> ModNotice:
    """Tell every moderator of ``group`` of ``notice``, in the caller's transaction.

    Stores the notice (the console shows alarms from it) and queues one send per
    moderator with a fediverse account; the worker delivers them, gathered, within a
    minute. Returns the stored notice.
    """
    if notice.kind not in KINDS:
        raise ValueError(f"unknown notice kind {notice.kind!r}")
    now = utcnow()
    row = (
        await conn.execute(
            sa.insert(mod_notices)
            .values(
                group_id=group.id,
                kind=notice.kind,
                post_uri=notice.post_uri,
                report_id=notice.report_id,
                follow_actor=notice.follow_actor,
                author=(notice.author or "")[:2048] or None,
                reason=notice.reason[:MAX_REASON],
                excerpt=excerpt(notice.excerpt, MAX_EXCERPT),
                link=_web_link(notice.link),
                reporter=notice.reporter,
                created_at=now,
            )
            .returning(*mod_notices.c)
        )
    ).one()
    stored = record(ModNotice, row)
    recipients = await notice_recipients(conn, group.id)
    if recipients:
        await conn.execute(
            sa.insert(mod_notice_sends),
            [
                {
                    "notice_id": stored.id,
                    "group_id": group.id,
                    "recipient": r,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for r in recipients
            ],
        )
        services.wake.set()
    return stored


def _web_link(url: str | None) -> str | None:
    """A link fit for a message: an http(s) URL within a column's width, else none."""
    return url if url and url.startswith(("https://", "http://")) and len(url) <= 2048 else None


async def get_notice(conn: AsyncConnection, notice_id: int) -> ModNotice | None:
    """The notice with this id, or None."""
    row = (await conn.execute(sa.select(mod_notices).where(mod_notices.c.id == notice_id))).one_or_none()
    return record_or_none(ModNotice, row)


async def get_notices(conn: AsyncConnection, notice_ids: list[int]) -> dict[int, ModNotice]:
    """Notices by id (those that exist)."""
    if not notice_ids:
        return {}
    rows = (await conn.execute(sa.select(mod_notices).where(mod_notices.c.id.in_(notice_ids)))).all()
    return {r.id: record(ModNotice, r) for r in rows}


async def send_digest_id(conn: AsyncConnection, send_id: int) -> int | None:
    """The digest a send went out in, as stored now (a sibling's job may have taken it since it was claimed)."""
    query = sa.select(mod_notice_sends.c.digest_id).where(mod_notice_sends.c.id == send_id)
    return (await conn.execute(query)).scalar_one_or_none()


async def waiting_sends(conn: AsyncConnection, group_id: int, recipient: str, *, limit: int) -> list[NoticeSend]:
    """A moderator's sends from one group not yet in a message, oldest first."""
    query = (
        sa.select(mod_notice_sends)
        .where(
            mod_notice_sends.c.group_id == group_id,
            mod_notice_sends.c.recipient == recipient,
            mod_notice_sends.c.digest_id.is_(None),
            mod_notice_sends.c.state == "queued",
        )
        .order_by(mod_notice_sends.c.id)
        .limit(limit)
    )
    return [record(NoticeSend, r) for r in (await conn.execute(query)).all()]


async def mark_sent(conn: AsyncConnection, digest_id: int, refs: dict[int, int]) -> None:
    """Record that the sends ``refs`` (send id -> item number) went out in ``digest_id``.

    A send no worker holds right now is finished here; one that is claimed (its own job
    is running or about to) finishes when its job sees the digest.
    """
    now = utcnow()
    for send_id, ref in refs.items():
        await conn.execute(
            sa.update(mod_notice_sends).where(mod_notice_sends.c.id == send_id).values(digest_id=digest_id, ref=ref)
        )
    idle = sa.or_(mod_notice_sends.c.lease_until.is_(None), mod_notice_sends.c.lease_until < now)
    await conn.execute(
        sa.update(mod_notice_sends)
        .where(mod_notice_sends.c.id.in_(list(refs)), idle)
        .values(state="done", finished_at=now, lease_until=None)
    )


async def items_of_digest(conn: AsyncConnection, digest_id: int) -> dict[int, ModNotice]:
    """The notices a digest carried, by their item number."""
    query = (
        sa.select(mod_notice_sends.c.ref, mod_notices)
        .join(mod_notices, mod_notices.c.id == mod_notice_sends.c.notice_id)
        .where(mod_notice_sends.c.digest_id == digest_id)
    )
    return {r.ref: record(ModNotice, r) for r in (await conn.execute(query)).all()}


async def drop_sends(conn: AsyncConnection, group_id: int, recipient: str, reason: str) -> int:
    """Give up every waiting send to a recipient who no longer moderates the group; how many."""
    now = utcnow()
    result = await conn.execute(
        sa.update(mod_notice_sends)
        .where(
            mod_notice_sends.c.group_id == group_id,
            mod_notice_sends.c.recipient == recipient,
            mod_notice_sends.c.digest_id.is_(None),
            mod_notice_sends.c.state == "queued",
            sa.or_(mod_notice_sends.c.lease_until.is_(None), mod_notice_sends.c.lease_until < now),
        )
        .values(state="gone", finished_at=now, last_error=reason)
    )
    return result.rowcount


async def recent_alarms(conn: AsyncConnection, group_id: int, *, limit: int) -> list[ModNotice]:
    """A group's alarms of the last two days not dismissed, oldest first (the console's queue)."""
    query = (
        sa.select(mod_notices)
        .where(
            mod_notices.c.group_id == group_id,
            mod_notices.c.kind == "alarm",
            mod_notices.c.dismissed_at.is_(None),
            mod_notices.c.created_at > utcnow() - ALARMS_SHOWN_FOR,
        )
        .order_by(mod_notices.c.id)
        .limit(limit)
    )
    return [record(ModNotice, r) for r in (await conn.execute(query)).all()]


async def dismiss_alarm(conn: AsyncConnection, group_id: int, notice_id: int) -> bool:
    """A moderator has seen an alarm: it leaves the console's queue. False when there was no such alarm."""
    result = await conn.execute(
        sa.update(mod_notices)
        .where(
            mod_notices.c.id == notice_id,
            mod_notices.c.group_id == group_id,
            mod_notices.c.kind == "alarm",
            mod_notices.c.dismissed_at.is_(None),
        )
        .values(dismissed_at=utcnow())
    )
    return result.rowcount > 0


async def link_account(services: Services, user_name: str, actor_uri: str | None) -> str | None:
    """``kith user link``: the fediverse account a local moderator reads notices on and replies from.

    The actor is fetched first (through the remote actor cache, signed by the instance
    actor) and must answer as an actor at exactly that URI: notices are delivered to its
    inbox and its replies are checked against its key, so an account that cannot be
    fetched could neither read nor answer. ``None`` unlinks. Returns the linked URI.
    """
    if actor_uri is None:
        await set_linked_actor(services.db, user_name, None)
        return None
    if not actor_uri.startswith(("https://", "http://")) or len(actor_uri) > 2048:
        raise BadRequest("the account must be an actor URI such as https://mastodon.example/users/ann")
    if actor_uri.startswith(services.links.base + "/"):
        raise BadRequest("link a fediverse account on another server; local accounts read the console")
    try:
        actor = await services.actors.fetch(actor_uri)
    except (FetchError, InvalidActor) as exc:
        raise BadRequest(f"{actor_uri} does not answer as a fediverse account: {exc}") from exc
    if actor.uri != actor_uri:
        raise BadRequest(f"{actor_uri} answers as {actor.uri}; link that URI")
    await set_linked_actor(services.db, user_name, actor.uri)
    return actor.uri
