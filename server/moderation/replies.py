"""Moderators act by replying: a reply to a group's direct message, read as a command and applied.

``inbox/handlers/create.py`` hands every Create whose object answers one of the group's
messages to moderators (``moderation/digests.py``) here, before any post intake: such a
reply is never a group post, whoever wrote it, and is never stored, shown or passed on.
It acts only when all of these hold (as strict as any moderation activity):

- the Create was signed by its actor's own key (the inbox checks the signer is the actor)
  and the reply is that actor's, with an id on the actor's own origin;
- it answers a message the group sent to that same actor (``mod_digests.recipient``),
  which binds it to that message's items;
- it is a direct reply: addressed to the group, not public, not to followers (commands
  are never read from public posts);
- the actor still moderates the group: a listed remote moderator, or a local leader who
  linked this account (``kith user link``), not disabled; a domain block or an account
  suspension wins over both;
- it was not taken before: its id is remembered (``mod_replies``), so the same reply
  delivered twice, or in two Creates, acts once.

A reply failing the first four is ignored without an answer. A moderator's command is
then parsed (``moderation/commands.py``) and applied through the same domain functions
as the console and ``kith mod`` (``moderation/actions.py``, ``moderation/reports.py``):
one transaction each, logged with the moderator's name, federated as always. The group
answers with one short direct message: what it did, or why it could not.

The one owner of ``mod_replies``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from server.errors import KithError
from server.federation.html import html_text
from server.federation.objects import author_of, refused, same_origin
from server.federation.vocab import AS_PUBLIC, id_of, ids_of, is_public
from server.groups.membership import Group, get_group_by_id
from server.groups.posts import find_post
from server.moderation import actions, reports
from server.moderation.authority import is_remote_moderator, linked_leader
from server.moderation.commands import Command, CommandError, parse_command
from server.moderation.digests import Digest, digest_items, find_digest, may_be_notice, send_answer, verbs_for
from server.moderation.notices import ModNotice
from server.services import Services
from server.tables import mod_replies
from server.types import utcnow

log = logging.getLogger("kith.moderation.replies")

MAX_TEXT = 2000  # characters of a reply read for a command


async def answers_a_notice(services: Services, obj: dict[str, Any]) -> Digest | None:
    """The group's message to a moderator that ``obj`` replies to, or None (then it is no command)."""
    parent = id_of(obj.get("inReplyTo"))
    if parent is None or not may_be_notice(services.links, parent):
        return None
    async with services.db.read() as conn:
        return await find_digest(conn, parent)


def _direct_to(obj: dict[str, Any], group_uri: str) -> bool:
    """Addressed to the group, and neither public nor to anyone's followers."""
    audience = ids_of(obj.get("to")) + ids_of(obj.get("cc")) + ids_of(obj.get("audience"))
    if is_public(obj) or AS_PUBLIC in audience or any(a.endswith("/followers") for a in audience):
        return False
    return group_uri in audience


async def _moderator(services: Services, group: Group, actor_uri: str) -> actions.Moderator | None:
    """The replying actor as one of the group's moderators now, or None."""
    if refused(actor_uri, services.is_blocked) or services.blocklist.policy.actor_suspended(actor_uri):
        return None
    async with services.db.read() as conn:
        if await is_remote_moderator(conn, group.id, actor_uri):
            return actions.Moderator(actor_uri, actor_uri)
        name = await linked_leader(conn, group.id, actor_uri)
        if name is not None:
            return await actions.local_moderator(services, conn, group, name)
    return None


async def take_reply(services: Services, digest: Digest, obj: dict[str, Any], sender: str) -> str:
    """Act on ``obj``, a reply by ``sender`` to the group's message ``digest``; what became of it (for logs)."""
    reply_id = obj.get("id")
    if not isinstance(reply_id, str) or author_of(obj) != sender or not same_origin(sender, reply_id):
        return "ignored: not the sender's own reply"
    if digest.recipient != sender:
        return "ignored: the message answered was not sent to the sender"
    async with services.db.read() as conn:
        group = await get_group_by_id(conn, digest.group_id)
    if not _direct_to(obj, services.links.group(group.name)):
        return "ignored: not a direct reply to the group"
    by = await _moderator(services, group, sender)
    if by is None:
        return "ignored: the sender does not moderate the group"
    now = utcnow()
    async with services.db.transaction() as conn:
        taken = await conn.execute(
            services.db.insert_ignore(mod_replies, ["reply_uri"]).values(
                reply_uri=reply_id, actor_uri=sender, group_id=group.id, created_at=now
            )
        )
        if taken.rowcount == 0:
            return "ignored: this reply was taken already"
    notice, text = await _apply(services, group, digest, by, obj)
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(mod_replies).where(mod_replies.c.reply_uri == reply_id).values(outcome=text[:500]))
    await send_answer(services, group, await services.actors.get(sender), text, notice.id if notice else None)
    log.info("reply %s by %s in %s: %s", reply_id, by.name, group.name, text)
    return text


async def _apply(
    services: Services, group: Group, digest: Digest, by: actions.Moderator, obj: dict[str, Any]
) -> tuple[ModNotice | None, str]:
    """Parse and apply the command: (the item it was about, the answer to send)."""
    try:
        command = parse_command(html_text(obj.get("content") if isinstance(obj.get("content"), str) else "", MAX_TEXT))
    except CommandError as exc:
        return None, f"Nothing done: {exc}."
    async with services.db.read() as conn:
        items = await digest_items(conn, digest)
    notice, problem = pick_item(items, command)
    if notice is None:
        return None, f"Nothing done: {problem}."
    async with services.db.transaction() as conn:
        await conn.execute(
            sa.update(mod_replies).where(mod_replies.c.reply_uri == obj["id"]).values(command=command.describe()[:500])
        )
    try:
        return notice, await _act(services, group, notice, command, by)
    except KithError as exc:
        return notice, f"Nothing done: {exc}."


def pick_item(items: dict[int, ModNotice], command: Command) -> tuple[ModNotice | None, str]:
    """The item a command names (by number, or the only one); else None and why, for the moderator."""
    if command.ref is None:
        if len(items) != 1:
            return None, (
                f"that message holds {len(items)} items: put the item's number after the command, "
                f"e.g. “{command.verb} 2”"
            )
        notice = next(iter(items.values()))
    else:
        found = items.get(command.ref)
        if found is None:
            return None, f"that message has no item {command.ref}"
        notice = found
    allowed = verbs_for(notice.kind)
    if command.verb not in allowed:
        what = {"report": "a report", "held": "a held post", "follow": "a follow request"}.get(notice.kind, "an alarm")
        hint = f"; answer with {', '.join(allowed)}" if allowed else ""
        return None, f"“{command.verb}” does not apply to {what}{hint}"
    return notice, ""


async def _act(services: Services, group: Group, notice: ModNotice, command: Command, by: actions.Moderator) -> str:
    """Apply one command to one item through the domain functions; the answer to send."""
    if notice.kind == "follow":
        return await _on_follow(services, group, notice, command, by)
    if notice.kind == "report":
        async with services.db.read() as conn:
            report = await reports.get_report(conn, notice.report_id) if notice.report_id is not None else None
        if report is None:
            return "Nothing done: the report is gone."
        if command.verb in ("resolve", "dismiss", "remove", "ban"):
            return await _on_report(services, group, report, command, by)
    return await _on_post(services, group, notice, command, by)


def _lasting(command: Command) -> str:
    return f" for {command.days} day{'s' if command.days != 1 else ''}" if command.days else ""


def _until(command: Command) -> datetime | None:
    return utcnow() + timedelta(days=command.days) if command.days else None


async def _on_follow(
    services: Services, group: Group, notice: ModNotice, command: Command, by: actions.Moderator
) -> str:
    actor = notice.follow_actor or ""
    who = notice.author or actor
    if command.verb == "ban":
        await actions.ban(services, group, actor, by=by, reason=command.reason, expires_at=_until(command))
        return f"Banned {who}{_lasting(command)}."
    await actions.decide_follow_request(services, group, actor, command.verb == "approve", by=by)
    return f"{'Approved' if command.verb == 'approve' else 'Refused'} the follow request of {who}."


async def _on_report(
    services: Services, group: Group, report: reports.Report, command: Command, by: actions.Moderator
) -> str:
    if report.state in reports.CLOSED:
        return f"Nothing done: the report is {report.state} already."
    if command.verb == "dismiss":
        await reports.dismiss_as(services, report, by)
        return "Dismissed the report."
    if command.verb == "resolve":
        await reports.resolve_as(services, report, group, by, reason=command.reason)
        return "Resolved the report."
    await reports.resolve_as(
        services,
        report,
        group,
        by,
        action=command.verb,
        reason=command.reason,
        ban_until=_until(command),
        remove_content=command.purge,
    )
    because = f" (reason: {command.reason})" if command.reason else ""
    if command.verb == "remove":
        return f"Removed the reported post{'s' if len(report.post_uris) != 1 else ''}{because}."
    purged = ", and removed their posts" if command.purge else ""
    return f"Banned {report.target_account or 'the account'}{_lasting(command)}{purged}{because}."


async def _on_post(services: Services, group: Group, notice: ModNotice, command: Command, by: actions.Moderator) -> str:
    verb, reason, post_uri = command.verb, command.reason, notice.post_uri
    if post_uri is None:
        return "Nothing done: the item names no post."
    async with services.db.read() as conn:
        post = await find_post(conn, post_uri)
    if post is None or post.group_id != group.id:
        return "Nothing done: the post is not in the group any more."
    if verb in ("approve", "reject"):
        await actions.decide_held_post(services, group, post_uri, verb == "approve", by=by, reason=reason)
        return "Approved the post: members' servers get it now." if verb == "approve" else "Rejected the post."
    if verb == "remove":
        await actions.remove_post(services, group, post_uri, by=by, reason=reason)
        return "Removed the post" + (f" (reason: {reason})." if reason else ".")
    if verb == "restore":
        await actions.restore_post(services, group, post_uri, by=by, reason=reason)
        return "Restored the post."
    if verb == "lock":
        await actions.set_locked(services, group, post_uri, True, by=by, reason=reason)
        return "Locked the thread."
    removed = await actions.ban(
        services, group, post.author_uri, by=by, reason=reason, expires_at=_until(command), remove_content=command.purge
    )
    purged = f", and removed {removed} post{'s' if removed != 1 else ''}" if command.purge else ""
    return f"Banned {notice.author or post.author_uri}{_lasting(command)}{purged}."
