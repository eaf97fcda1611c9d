"""Reports (``Flag``) in and out, and their lifecycle: open, assigned, resolved or rejected.

The one owner of the ``reports`` table. A reporter is never revealed to the reported
server: reports we send or forward go out as a ``Flag`` from the instance actor, with
the comment and the reported objects only.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.accounts import User, get_user
from server.errors import BadRequest, Forbidden, NotFound
from server.federation import activities
from server.federation.actors import find_actor, find_actors, from_domain
from server.federation.delivery import enqueue
from server.federation.objects import host_or_none, refused
from server.federation.vocab import ids_of
from server.groups.membership import Group, get_group, get_group_by_id, group_name_from_uri
from server.groups.posts import find_post
from server.links import Links
from server.moderation import actions, modlog
from server.moderation.authority import local_role, remote_moderator_uris
from server.moderation.notices import Notice, notify_moderators
from server.rows import record, record_or_none
from server.services import Services
from server.tables import group_roles, local_actors, remote_actors, reports
from server.types import utcnow

log = logging.getLogger("kith.reports")

MAX_COMMENT = 1000
STATES = ("open", "assigned", "resolved", "rejected")


@dataclass(frozen=True, slots=True)
class Report:
    """A report: who made it (never sent on), about what, and where it stands."""

    id: int
    group_id: int | None  # None: for the instance's admins
    flag_uri: str | None  # the incoming Flag's id (or ours, for an outgoing one)
    reporter: str  # a remote actor URI or a local user's name
    target_account: str | None
    target_posts: str  # JSON list of post URIs
    comment: str
    state: str  # open | assigned | resolved | rejected
    assigned_to: int | None
    action_taken: str
    forwarded: bool
    outgoing: bool  # ours, sent to another server
    created_at: datetime
    updated_at: datetime

    @property
    def post_uris(self) -> list[str]:
        """The reported posts' URIs."""
        uris: list[str] = json.loads(self.target_posts)
        return uris


async def receive_flag(services: Services, flag: dict[str, Any], sender: str) -> Report | None:
    """Store an incoming report (Mastodon, Lemmy and Mbin shapes); None when ignored."""
    sender_host = host_or_none(sender)
    if sender_host is None:
        return None
    if services.blocklist.policy.rejects_reports(sender_host):
        log.info("report %s from %s ignored: reject_reports", flag.get("id"), sender_host)
        return None
    objects = ids_of(flag.get("object"))[:50]
    comment = flag.get("content") or flag.get("summary") or ""
    comment = comment[:MAX_COMMENT] if isinstance(comment, str) else ""
    group_id = None
    target_posts: list[str] = []
    target_account = None
    async with services.db.read() as conn:
        for uri in objects:
            post = await find_post(conn, uri)
            if post is not None:
                target_posts.append(uri)
                group_id = group_id or post.group_id
                target_account = target_account or post.author_uri
                continue
            name = group_name_from_uri(uri, services.links)
            if name is not None:
                with contextlib.suppress(NotFound):
                    group_id = group_id or (await get_group(conn, name)).id
                continue
            if await find_actor(conn, uri) is not None:
                target_account = uri
        if group_id is None:
            for uri in ids_of(flag.get("to")) + ids_of(flag.get("audience")):
                name = group_name_from_uri(uri, services.links)
                if name is not None:
                    try:
                        group_id = (await get_group(conn, name)).id
                    except NotFound:
                        continue
    if not target_posts and target_account is None and group_id is None:
        log.info("report %s names nothing we hold", flag.get("id"))
        return None
    values = {
        "group_id": group_id,
        "flag_uri": flag.get("id"),
        "reporter": sender,
        "target_account": target_account,
        "target_posts": json.dumps(target_posts),
        "comment": comment,
    }
    return await _store_flag(services, values)


async def _store_flag(services: Services, values: dict[str, Any]) -> Report | None:
    """Store a report once (by its Flag's id); a new one about a group's content is told to its moderators."""
    now = utcnow()
    async with services.db.transaction() as conn:
        stmt = services.db.insert_ignore(reports, ["flag_uri"]).values(**values, created_at=now, updated_at=now)
        inserted = (await conn.execute(stmt)).rowcount == 1
        row = (await conn.execute(sa.select(reports).where(reports.c.flag_uri == values["flag_uri"]))).one_or_none()
        report = record_or_none(Report, row)
        if inserted and report is not None and report.group_id is not None:
            await _tell_moderators(conn, services, report, report.group_id)
    return report


async def _tell_moderators(conn: AsyncConnection, services: Services, report: Report, group_id: int) -> None:
    """A new report about a group's content: its moderators are told, in the report's own transaction."""
    group = await get_group_by_id(conn, group_id)
    post = await find_post(conn, report.post_uris[0]) if report.post_uris else None
    author = await find_actor(conn, report.target_account) if report.target_account else None
    notice = Notice(
        "report",
        reason=report.comment,
        post_uri=post.uri if post is not None else None,
        report_id=report.id,
        author=author.handle if author is not None else report.target_account,
        excerpt=post.content_html if post is not None else "",
        link=(post.url or post.uri) if post is not None else report.target_account,
        reporter=report.reporter,
    )
    await notify_moderators(conn, services, group, notice)


async def get_report(conn: AsyncConnection, report_id: int) -> Report:
    """The report with this id, else ``NotFound``."""
    row = (await conn.execute(sa.select(reports).where(reports.c.id == report_id))).one_or_none()
    if row is None:
        raise NotFound("no such report")
    return record(Report, row)


WAITING = ("open", "assigned")


async def waiting(conn: AsyncConnection, group_id: int, *, limit: int) -> list[Report]:
    """A group's reports that wait for a decision (open or assigned), oldest first (the moderation queue)."""
    query = (
        sa.select(reports)
        .where(reports.c.group_id == group_id, reports.c.state.in_(WAITING), reports.c.outgoing.is_(False))
        .order_by(reports.c.id)
        .limit(limit)
    )
    return [record(Report, r) for r in (await conn.execute(query)).all()]


async def count_waiting(conn: AsyncConnection, group_id: int) -> int:
    """How many of a group's reports wait for a decision."""
    query = sa.select(sa.func.count()).where(
        reports.c.group_id == group_id, reports.c.state.in_(WAITING), reports.c.outgoing.is_(False)
    )
    return int((await conn.execute(query)).scalar_one())


async def may_handle(conn: AsyncConnection, report: Report, user_name: str) -> User:
    """The acting user, when they may handle this report: admins always, a group's leaders its reports."""
    user = await get_user(conn, user_name)
    if user.is_admin:
        return user
    if report.group_id is not None and await local_role(conn, report.group_id, user_name) is not None:
        return user
    raise Forbidden("only the group's moderators or an admin may handle this report")


async def list_reports(
    conn: AsyncConnection,
    *,
    user_name: str,
    state: str | None = None,
    group_name: str | None = None,
    limit: int = 100,
    max_id: int | None = None,
) -> list[Report]:
    """Reports this user may see (admins: all; moderators: their groups'), newest first."""
    user = await get_user(conn, user_name)
    query = sa.select(reports).order_by(reports.c.id.desc()).limit(limit)
    if state is not None:
        if state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}")
        query = query.where(reports.c.state == state)
    if max_id is not None:
        query = query.where(reports.c.id < max_id)
    if group_name is not None:
        query = query.where(reports.c.group_id == (await get_group(conn, group_name)).id)
    if not user.is_admin:
        # Filtered in the query, not after the LIMIT, so a moderator's pages are full.
        led = sa.select(group_roles.c.group_id).where(group_roles.c.user_id == user.id)
        query = query.where(reports.c.group_id.in_(led))
    return [record(Report, r) for r in (await conn.execute(query)).all()]


@dataclass(frozen=True)
class ReportFilter:
    """Which reports a listing shows (Mastodon's admin API filters)."""

    states: tuple[str, ...]
    leader_id: int | None  # None: an admin, who sees every report; else a user who sees their groups'
    reporter: str | None = None  # a remote actor URI or a local name
    target: str | None = None  # a remote actor URI, or a local name (a person, or a group by name)
    never: bool = False  # an unknown account was asked for: nothing matches
    instance_only: bool = False  # only reports about no group (the admin console's instance reports)


async def leads_a_group(conn: AsyncConnection, user_id: int) -> bool:
    """Whether a local account is the owner or a moderator of any group."""
    query = sa.select(group_roles.c.group_id).where(group_roles.c.user_id == user_id).limit(1)
    return (await conn.execute(query)).first() is not None


async def filtered(
    conn: AsyncConnection,
    which: ReportFilter,
    links: Links,
    *,
    max_id: int | None,
    since_id: int | None,
    min_id: int | None,
    limit: int,
) -> list[Report]:
    """A page of reports, newest first (the page after ``min_id`` when it is given), Mastodon's id paging."""
    query = sa.select(reports).where(reports.c.state.in_(which.states))
    if which.never:
        query = query.where(sa.false())
    if which.instance_only:
        query = query.where(reports.c.group_id.is_(None), reports.c.outgoing.is_(False))
    if which.leader_id is not None:
        led = sa.select(group_roles.c.group_id).where(group_roles.c.user_id == which.leader_id)
        query = query.where(reports.c.group_id.in_(led))
    if which.reporter is not None:
        query = query.where(reports.c.reporter == which.reporter)
    if which.target is not None:
        query = query.where(_target_is(which.target, links))
    if max_id is not None:
        query = query.where(reports.c.id < max_id)
    if since_id is not None:
        query = query.where(reports.c.id > since_id)
    if min_id is not None:
        query = query.where(reports.c.id > min_id).order_by(reports.c.id.asc())
    else:
        query = query.order_by(reports.c.id.desc())
    rows = (await conn.execute(query.limit(limit))).all()
    return sorted((record(Report, r) for r in rows), key=lambda r: r.id, reverse=True)


def _target_is(ref: str, links: Links) -> sa.ColumnElement[bool]:
    if ref.startswith(("https://", "http://")):
        return reports.c.target_account == ref
    # A local name: a person, or a group (reports about a group name no account, only the group).
    group_ids = sa.select(local_actors.c.id).where(local_actors.c.name == ref, local_actors.c.kind == "group")
    return sa.or_(
        reports.c.target_account == links.actor("person", ref),
        sa.and_(reports.c.target_account.is_(None), reports.c.group_id.in_(group_ids)),
    )


LOGGED = {"resolved": "resolve_report", "rejected": "dismiss_report"}


async def _write_state(
    conn: AsyncConnection, report: Report, values: dict[str, Any], *, moderator: str, reason: str = ""
) -> Report:
    """Change a report in the caller's transaction; closing a group's report goes to its moderation log.

    The log names the report by number only: the public log must not tell which post was reported.
    """
    await conn.execute(sa.update(reports).where(reports.c.id == report.id).values(**values, updated_at=utcnow()))
    state = values.get("state")
    if report.group_id is not None and state in LOGGED and state != report.state:
        await modlog.write(
            conn,
            group_id=report.group_id,
            moderator=moderator,
            action=LOGGED[state],
            target=f"report {report.id}",
            reason=reason,
        )
    return await get_report(conn, report.id)


async def set_state(
    services: Services, report_id: int, user_name: str, state: str, *, action_taken: str = ""
) -> Report:
    """Assign to self, unassign, reject or reopen."""
    async with services.db.transaction() as conn:
        report = await get_report(conn, report_id)
        user = await may_handle(conn, report, user_name)
        values: dict[str, Any] = {"state": state}
        if state == "assigned":
            values["assigned_to"] = user.id
        elif state == "open":
            values["assigned_to"] = None
            values["action_taken"] = ""
        if action_taken:
            values["action_taken"] = action_taken
        return await _write_state(conn, report, values, moderator=user_name)


async def resolve(
    services: Services,
    report_id: int,
    user_name: str,
    *,
    action: str | None = None,
    reason: str = "",
    ban_until: datetime | None = None,
    remove_content: bool = False,
) -> Report:
    """Resolve a report, performing its action: ``remove`` the reported posts or ``ban`` the account
    (until ``ban_until`` when given; with all their posts in the group when ``remove_content``)."""
    async with services.db.read() as conn:
        report = await get_report(conn, report_id)
        await may_handle(conn, report, user_name)
        group = await get_group_by_id(conn, report.group_id) if report.group_id is not None else None
        by = await actions.local_moderator(services, conn, group, user_name) if group is not None else None
    if by is None:
        if action is not None:
            raise BadRequest("only a report about a group's content can remove or ban")
        async with services.db.transaction() as conn:
            return await _write_state(conn, report, {"state": "resolved", "action_taken": "none"}, moderator=user_name)
    assert group is not None
    return await resolve_as(
        services, report, group, by, action=action, reason=reason, ban_until=ban_until, remove_content=remove_content
    )


async def resolve_as(
    services: Services,
    report: Report,
    group: Group,
    by: actions.Moderator,
    *,
    action: str | None = None,
    reason: str = "",
    ban_until: datetime | None = None,
    remove_content: bool = False,
) -> Report:
    """Resolve a group's report as ``by``, a moderator whose right to act the caller has checked.

    ``resolve`` (the console, the API, ``kith report``) and a moderator's reply by direct
    message (``moderation/replies.py``) both end here.
    """
    taken = "none"
    log_reason = reason
    if action is not None:
        reason = reason or report.comment[:200]
        if action == "remove":
            for uri in report.post_uris:
                async with services.db.read() as conn:
                    post = await find_post(conn, uri)
                if post is not None and post.state in ("visible", "held"):
                    await actions.remove_post(services, group, uri, by=by, reason=reason)
            taken = "remove"
        elif action == "ban":
            if not report.target_account:
                raise BadRequest("the report names no account to ban")
            await actions.ban(
                services,
                group,
                report.target_account,
                by=by,
                reason=reason,
                expires_at=ban_until,
                remove_content=remove_content,
            )
            taken = "ban"
        else:
            raise BadRequest("action must be remove or ban")
    async with services.db.transaction() as conn:
        current = await get_report(conn, report.id)
        values = {"state": "resolved", "action_taken": taken}
        return await _write_state(conn, current, values, moderator=by.name, reason=log_reason)


async def dismiss_as(services: Services, report: Report, by: actions.Moderator) -> Report:
    """Reject (dismiss) a group's report as ``by``, a moderator the caller has checked."""
    async with services.db.transaction() as conn:
        current = await get_report(conn, report.id)
        return await _write_state(conn, current, {"state": "rejected"}, moderator=by.name)


async def forward(services: Services, report_id: int, user_name: str) -> list[str]:
    """Send the report on to the reported content's server and the group's remote moderators' servers.

    As a ``Flag`` from the instance actor: the reporter is not named. Returns the inboxes.
    """
    async with services.db.transaction() as conn:
        report = await get_report(conn, report_id)
        await may_handle(conn, report, user_name)
        objects = ([report.target_account] if report.target_account else []) + report.post_uris
        if not objects:
            raise BadRequest("the report names nothing to forward")
        inboxes: list[str] = []
        if report.target_account:
            author = await find_actor(conn, report.target_account)
            if author is not None:
                inboxes.append(author.delivery_inbox)
        if report.group_id is not None:
            moderators = await find_actors(conn, await remote_moderator_uris(conn, report.group_id))
            inboxes += [m.delivery_inbox for m in moderators.values()]
        inboxes = [i for i in dict.fromkeys(inboxes) if not refused(i, services.is_blocked)]
        if not inboxes:
            raise BadRequest("there is no server to forward this report to")
        flag = activities.flag(
            services.links.base,
            actor=services.links.instance_actor,
            objects=objects,
            content=report.comment,
            to=report.target_account,
        )
        await enqueue(conn, services.db, activity=flag, actor_id=services.instance.actor_id, inboxes=inboxes)
        await conn.execute(
            sa.update(reports).where(reports.c.id == report_id).values(forwarded=True, updated_at=utcnow())
        )
    services.wake.set()
    return inboxes


async def report_remote(services: Services, user_name: str, uris: list[str], comment: str) -> Report:
    """A local moderator or admin reports a remote post or account to its server."""
    if not uris:
        raise BadRequest("name at least one post or account")
    async with services.db.read() as conn:
        user = await get_user(conn, user_name)
        posts_found = [p for p in [await find_post(conn, u) for u in uris] if p is not None]
        if not user.is_admin:
            roles = [await local_role(conn, p.group_id, user_name) for p in posts_found]
            if not posts_found or not all(roles):
                raise Forbidden("only admins, or moderators of the post's group, may report")
    account = posts_found[0].author_uri if posts_found else uris[0]
    author = await services.actors.get(account)
    objects = [author.uri] + [p.uri for p in posts_found]
    flag = activities.flag(
        services.links.base,
        actor=services.links.instance_actor,
        objects=objects,
        content=comment[:MAX_COMMENT],
        to=author.uri,
    )
    now = utcnow()
    async with services.db.transaction() as conn:
        await enqueue(
            conn, services.db, activity=flag, actor_id=services.instance.actor_id, inboxes=[author.delivery_inbox]
        )
        row = (
            await conn.execute(
                sa.insert(reports)
                .values(
                    group_id=posts_found[0].group_id if posts_found else None,
                    flag_uri=flag["id"],
                    reporter=user_name,
                    target_account=author.uri,
                    target_posts=json.dumps([p.uri for p in posts_found]),
                    comment=comment[:MAX_COMMENT],
                    state="resolved",
                    action_taken="forwarded",
                    forwarded=True,
                    outgoing=True,
                    created_at=now,
                    updated_at=now,
                )
                .returning(*reports.c)
            )
        ).one()
    services.wake.set()
    return record(Report, row)


def report_json(report: Report) -> dict[str, Any]:
    """A report for moderators (the reporter is shown here, never sent on)."""
    return {
        "id": str(report.id),
        "state": report.state,
        "group_id": report.group_id,
        "reporter": report.reporter,
        "target_account": report.target_account,
        "target_posts": report.post_uris,
        "comment": report.comment,
        "action_taken": report.action_taken,
        "forwarded": report.forwarded,
        "outgoing": report.outgoing,
        "assigned_to": report.assigned_to,
        "created_at": report.created_at.isoformat(),
        "updated_at": report.updated_at.isoformat(),
    }


# --------------------------------------------------------------------------- counts for the admin dashboard

CLOSED = ("resolved", "rejected")  # Mastodon has one closed state: resolved, with or without action


def filed(domain: str | None = None, *, subdomains: bool = False) -> sa.Select[Any]:
    """Reports by when they were filed (``server.days`` counts them); against ``domain``'s people when given."""
    stmt = sa.select(reports.c.created_at.label("at"), reports.c.id.label("who"))
    if domain is None:
        return stmt
    return stmt.select_from(reports.join(remote_actors, remote_actors.c.uri == reports.c.target_account)).where(
        from_domain(domain, subdomains=subdomains)
    )


def closed() -> sa.Select[Any]:
    """Reports resolved or rejected, by their last change (the closing one, unless reopened since)."""
    return sa.select(reports.c.updated_at.label("at"), reports.c.id.label("who")).where(reports.c.state.in_(CLOSED))
