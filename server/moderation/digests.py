"""The direct messages a group sends its moderators: notices gathered into digests, and answers.

The worker's ``mod_notice`` job kind runs one ``mod_notice_sends`` row at a time
(``send_notices``): it gathers every notice waiting for that moderator from that group
into one direct message (``activities.direct_note``: to the moderator alone, never
public, never followers), at most one a minute (``mod_notice_clocks``, taken with a
conditional UPDATE, so two workers never both send within the minute). The first notice
of a quiet spell goes at once; those that follow within the minute wait and go together.

Each item of a message is numbered (``#1``, ``#2`` ...); a moderator's reply names the
number after the command (``remove 2 spam``), or none when the message holds one item.
The message is remembered (``mod_digests``) with the moderator it went to, and that is
what binds a reply to its items: ``moderation/replies.py`` acts on a reply only when it
answers a message the group sent to the replying moderator. An answer to a command
(``send_answer``) is remembered the same way, bound to the item it acted on, so a
moderator may answer it in turn (``restore`` after a ``remove``).

Who reported is shown by ``reporter_shown``: never to a remote moderator unless the
reporter is on the moderator's own server (a local leader reading these on a linked
fediverse account counts as remote: the message is stored on that server). The
console, on this instance, always shows it.

The one owner of ``mod_digests`` and ``mod_notice_clocks``.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation import activities, outbound
from server.federation.actors import RemoteActor
from server.federation.delivery import enqueue
from server.federation.objects import host_or_none, refused
from server.groups.membership import Group, get_group_by_id
from server.links import Links
from server.moderation.authority import notice_recipients
from server.moderation.notices import (
    ModNotice,
    NoticeSend,
    drop_sends,
    get_notice,
    get_notices,
    items_of_digest,
    mark_sent,
    send_digest_id,
    waiting_sends,
)
from server.queue import Outcome
from server.rows import record_or_none
from server.services import Services
from server.tables import mod_digests, mod_notice_clocks
from server.types import utcnow

log = logging.getLogger("kith.moderation.digests")

GATHER = timedelta(minutes=1)  # at most one message per moderator per group in this time
MAX_ITEMS = 25  # items per message; more wait for the next one
MAX_FETCH_ATTEMPTS = 8  # the moderator's actor could not be fetched this often: give up

# What each kind of item answers to, in the order the message lists them.
COMMANDS: dict[str, tuple[str, ...]] = {
    "report": ("remove [reason]", "ban [N]d [reason] [purge]", "lock", "restore", "resolve", "dismiss"),
    "held": ("approve", "reject", "remove [reason]", "restore", "lock", "ban [N]d [reason] [purge]"),
    "follow": ("approve", "reject", "ban [N]d [reason]"),
    "alarm": (),
}


def verbs_for(kind: str) -> tuple[str, ...]:
    """The command words an item of ``kind`` takes."""
    return tuple(c.split()[0] for c in COMMANDS.get(kind, ()))


@dataclass(frozen=True, slots=True)
class Digest:
    """A direct message the group sent a moderator: a digest of notices, or an answer (``notice_id``)."""

    id: int
    group_id: int
    recipient: str
    note_uri: str
    notice_id: int | None
    created_at: datetime


def may_be_notice(links: Links, uri: str | None) -> bool:
    """Could ``uri`` be one of our messages to moderators? (a cheap test before asking the database)"""
    return uri is not None and uri.startswith(links.activity(""))


async def find_digest(conn: AsyncConnection, note_uri: str) -> Digest | None:
    """The message to a moderator with this note id, or None."""
    row = (await conn.execute(sa.select(mod_digests).where(mod_digests.c.note_uri == note_uri))).one_or_none()
    return record_or_none(Digest, row)


async def digest_items(conn: AsyncConnection, digest: Digest) -> dict[int, ModNotice]:
    """The items a message carried, by number (an answer carries its one item as #1)."""
    if digest.notice_id is not None:
        notice = await get_notice(conn, digest.notice_id)
        return {1: notice} if notice is not None else {}
    return await items_of_digest(conn, digest.id)


def reporter_shown(reporter: str | None, recipient: str) -> bool:
    """May a message to ``recipient`` (an actor URI) name ``reporter``?

    Only when the reporter is an actor on the recipient's own server: a remote server
    learns no reporter it did not already know. A local reporter (a name, not a URI) is
    never named off this instance.
    """
    if not reporter or not reporter.startswith(("https://", "http://")):
        return False
    host = host_or_none(reporter)
    return host is not None and host == host_or_none(recipient)


def _item_html(ref: int | None, notice: ModNotice, recipient: str) -> str:
    """One item of a message: what happened, an excerpt, a link, and the commands it takes."""
    e = html.escape
    label = f"<strong>#{ref}</strong> " if ref is not None else ""
    who = f" by {e(notice.author)}" if notice.author else ""
    if notice.kind == "report":
        what = f"Report about a post{who}" if notice.post_uri else f"Report{who}"
        if notice.reason:
            what += f": “{e(notice.reason)}”"
        if reporter_shown(notice.reporter, recipient):
            what += f" (reported by {e(notice.reporter or '')})"
    elif notice.kind == "held":
        what = f"Post held for approval{who}" + (f": {e(notice.reason)}" if notice.reason else "")
    elif notice.kind == "follow":
        what = f"Follow request from {e(notice.author or notice.follow_actor or '')}"
    else:
        what = "Alarm: " + e(notice.reason)
    parts = [label + what + "."]
    if notice.excerpt:
        parts.append(f"<br>“{e(notice.excerpt)}”")
    if notice.link:
        parts.append(f'<br><a href="{e(notice.link)}">{e(notice.link)}</a>')
    commands = COMMANDS.get(notice.kind, ())
    if commands:
        parts.append("<br>Answer: " + " · ".join(e(c) for c in commands))
    return "<p>" + "".join(parts) + "</p>"


def render_digest(group_name: str, group_title: str, items: list[tuple[int, ModNotice]], recipient: str) -> str:
    """The body of a message of ``items`` (numbered) for ``recipient``; the caller adds the mention."""
    e = html.escape
    single = len(items) == 1
    head = (
        f"<p>Moderation of {e(group_title or group_name)}: "
        + ("one item." if single else f"{len(items)} items.")
        + "</p>"
    )
    body = "".join(_item_html(None if single else ref, n, recipient) for ref, n in items)
    if not any(COMMANDS.get(n.kind) for _, n in items):
        return head + body
    how = (
        "Reply to this message with a command, e.g. “remove spam”."
        if single
        else "Reply to this message with a command and the item's number, e.g. “remove 2 spam”."
    )
    return head + body + f"<p>{how} Only a direct reply from you counts.</p>"


def answer_html(text: str) -> str:
    """An answer's body: one short plain sentence."""
    return f"<p>{html.escape(text)}</p>"


async def _take_clock(conn: AsyncConnection, services: Services, group_id: int, recipient: str) -> datetime | None:
    """Take this minute's message to ``recipient``: None when taken, else when the next may go.

    A conditional UPDATE: two workers racing for the same moderator both update the one
    row, and only one finds it old enough (PostgreSQL re-reads a row it waited for).
    """
    now = utcnow()
    await conn.execute(
        services.db.insert_ignore(mod_notice_clocks, ["group_id", "recipient"]).values(
            group_id=group_id, recipient=recipient, last_sent_at=now - GATHER
        )
    )
    where = sa.and_(mod_notice_clocks.c.group_id == group_id, mod_notice_clocks.c.recipient == recipient)
    taken = await conn.execute(
        sa.update(mod_notice_clocks)
        .where(where, mod_notice_clocks.c.last_sent_at <= now - GATHER)
        .values(last_sent_at=now)
    )
    if taken.rowcount == 1:
        return None
    last = (await conn.execute(sa.select(mod_notice_clocks.c.last_sent_at).where(where))).scalar_one()
    return last + GATHER


async def _remember(
    conn: AsyncConnection, services: Services, group: Group, actor: RemoteActor, body_html: str, notice_id: int | None
) -> int:
    """Queue a direct message to ``actor`` and remember it; its ``mod_digests`` id."""
    create = activities.direct_note(
        services.links.base,
        actor=services.links.group(group.name),
        to=actor.uri,
        to_handle=actor.handle,
        content_html=body_html,
        published=utcnow(),
    )
    # The note on its own too, so that its id dereferences (for its addressee alone).
    await outbound.store(conn, create["object"], actor_id=group.id, public=False, post_id=None)
    digest_id = (
        await conn.execute(
            sa.insert(mod_digests)
            .values(
                group_id=group.id,
                recipient=actor.uri,
                note_uri=create["object"]["id"],
                notice_id=notice_id,
                created_at=utcnow(),
            )
            .returning(mod_digests.c.id)
        )
    ).scalar_one()
    # The moderator's own inbox, not their server's shared one: a direct message.
    await enqueue(conn, services.db, activity=create, actor_id=group.id, inboxes=[actor.inbox])
    return int(digest_id)


class _NothingToSend(Exception):
    """Another job took every waiting notice first: roll back the clock."""


async def send_notices(services: Services, send: NoticeSend) -> Outcome:
    """The ``mod_notice`` job: send ``send``'s moderator one message with everything waiting for them."""
    recipient = send.recipient
    async with services.db.read() as conn:
        if await send_digest_id(conn, send.id) is not None:
            return Outcome.done()  # a sibling's message carried it
        group = await get_group_by_id(conn, send.group_id)
        listed = recipient in await notice_recipients(conn, send.group_id)
    cut_off = refused(recipient, services.is_blocked) or services.blocklist.policy.actor_suspended(recipient)
    if not listed or cut_off:
        why = "blocked or suspended" if listed else "no longer a moderator"
        async with services.db.transaction() as conn:
            await drop_sends(conn, send.group_id, recipient, why)
        return Outcome("gone", why)
    try:
        actor = await services.actors.get(recipient)
    except Exception as exc:  # the moderator's server is down or the account gone: the worker retries
        if send.attempts >= MAX_FETCH_ATTEMPTS:
            return Outcome("dead", f"could not fetch {recipient}: {type(exc).__name__}")
        raise
    try:
        async with services.db.transaction() as conn:
            wait = await _take_clock(conn, services, group.id, recipient)
            if wait is not None:
                return Outcome.retry(wait, f"gathered: the next message to this moderator goes at {wait.isoformat()}")
            waiting = await waiting_sends(conn, group.id, recipient, limit=MAX_ITEMS)
            if not waiting:
                raise _NothingToSend
            notices = await get_notices(conn, [w.notice_id for w in waiting])
            refs = {w.id: i for i, w in enumerate(waiting, 1)}
            items = [(refs[w.id], notices[w.notice_id]) for w in waiting]
            body = render_digest(group.name, group.title, items, recipient)
            digest_id = await _remember(conn, services, group, actor, body, None)
            await mark_sent(conn, digest_id, refs)
    except _NothingToSend:
        return Outcome.done()
    services.wake.set()
    log.info("told %s of %d item(s) in %s", recipient, len(items), group.name)
    if send.id not in refs:  # more than one message's worth waited: this one goes in the next
        return Outcome.retry(utcnow() + GATHER, "gathered into the next message")
    return Outcome.done()


async def send_answer(services: Services, group: Group, actor: RemoteActor, text: str, notice_id: int | None) -> None:
    """Answer a moderator's command with one short direct message, bound to the item it was about."""
    async with services.db.transaction() as conn:
        await _remember(conn, services, group, actor, answer_html(text), notice_id)
    services.wake.set()
