"""``kith mod ...`` and ``kith report ...``: moderation from a shell."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from server.cli.common import print_json, with_services
from server.settings import Settings
from server.types import utcnow

if TYPE_CHECKING:  # the commands import what they use when they run, to start fast
    from server.services import Services

MOD_ACTIONS = {
    "remove": "remove a post or comment",
    "restore": "restore a removed post",
    "lock": "lock a thread",
    "unlock": "unlock a thread",
    "pin": "pin a thread",
    "unpin": "unpin a thread",
    "ban": "ban an actor from the group",
    "unban": "lift a ban",
    "approve-post": "approve a held post",
    "reject-post": "reject a held post",
    "add-mod": "make a local user or a remote actor a moderator",
    "remove-mod": "remove a moderator",
}


def cmd_mod(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation import actions

    async def run(services: Services) -> Any:
        group, by = await actions.group_and_moderator(services, args.group, args.as_user)
        target, reason = args.target, args.reason or ""
        match args.action:
            case "remove":
                await actions.remove_post(services, group, target, by=by, reason=reason)
            case "restore":
                await actions.restore_post(services, group, target, by=by, reason=reason)
            case "lock" | "unlock":
                await actions.set_locked(services, group, target, args.action == "lock", by=by, reason=reason)
            case "pin" | "unpin":
                await actions.set_pinned(services, group, target, args.action == "pin", by=by)
            case "ban":
                expires = utcnow() + timedelta(days=args.days) if args.days else None
                removed = await actions.ban(
                    services,
                    group,
                    target,
                    by=by,
                    reason=reason,
                    expires_at=expires,
                    remove_content=args.remove_content,
                )
                return f"banned {target}" + (f", {removed} posts removed" if removed else "")
            case "unban":
                await actions.unban(services, group, target, by=by, reason=reason)
            case "approve-post" | "reject-post":
                await actions.decide_held_post(
                    services, group, target, args.action == "approve-post", by=by, reason=reason
                )
            case "add-mod" | "remove-mod":
                await actions.set_moderator(services, group, target, args.action == "add-mod", by=by)
        return f"{args.action}: {target}"

    print(asyncio.run(with_services(settings, run)))
    return 0


def cmd_mod_log(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.membership import get_group
    from server.moderation.modlog import entries, entry_json

    async def run(services: Services) -> Any:
        async with services.db.read() as conn:
            group = await get_group(conn, args.group)
            return [entry_json(e, with_moderator=True) for e in await entries(conn, group.id)]

    print_json(asyncio.run(with_services(settings, run)))
    return 0


def cmd_mod_held(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.membership import get_group
    from server.groups.threads import held_posts

    async def run(services: Services) -> list[dict[str, str]]:
        async with services.db.read() as conn:
            group = await get_group(conn, args.group)
            held = await held_posts(conn, group.id, max_id=None, limit=10_000)
        return [{"uri": p.uri, "author": p.author_uri, "content_html": p.content_html} for p in reversed(held)]

    print_json(asyncio.run(with_services(settings, run)))
    return 0


def cmd_mod_guards(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from server.groups.membership import get_group
    from server.moderation import actions
    from server.moderation.rulebook import load_guards, save_guards

    changes: dict[str, Any] = {}
    for key in ("hold_first_posts", "member_posts_per_hour", "instance_posts_per_hour", "max_group_mentions"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    if args.keyword is not None:
        changes["keywords"] = args.keyword
    if args.link_domain is not None:
        changes["link_domains"] = args.link_domain
    if args.filter_action is not None:
        changes["filter_action"] = args.filter_action

    async def run(services: Services) -> Any:
        if changes:
            await actions.group_and_moderator(services, args.group, args.as_user)
        async with services.db.transaction() as conn:
            group = await get_group(conn, args.group)
            guards = (
                await save_guards(conn, services.db, group.id, changes)
                if changes
                else await load_guards(conn, group.id)
            )
        return asdict(guards)

    print_json(asyncio.run(with_services(settings, run)))
    return 0


def cmd_mod_crowd(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation import actions, crowd

    changes = {name: getattr(args, name) for name in crowd.THRESHOLD_NAMES if getattr(args, name) is not None}

    async def run(services: Services) -> Any:
        group, by = await actions.group_and_moderator(services, args.group, args.as_user)
        async with services.db.transaction() as conn:
            control = await crowd.set_thresholds(conn, services.db, group, changes, by=by.name)
            if args.state is not None:
                control = await crowd.switch(
                    conn, services.db, group, on=args.state == "on", by=by.name, hours=args.hours
                )
        return {"group": group.name, **crowd.status_json(control)}

    print_json(asyncio.run(with_services(settings, run)))
    return 0


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation import reports

    async def run(services: Services) -> Any:
        match args.action:
            case "list":
                async with services.db.read() as conn:
                    rows = await reports.list_reports(
                        conn, user_name=args.as_user, state=args.state, group_name=args.group
                    )
                return [reports.report_json(r) for r in rows]
            case "show":
                async with services.db.read() as conn:
                    row = await reports.get_report(conn, args.id)
                    await reports.may_handle(conn, row, args.as_user)
                return reports.report_json(row)
            case "assign" | "unassign" | "reject" | "reopen":
                state = {"assign": "assigned", "unassign": "open", "reject": "rejected", "reopen": "open"}
                return reports.report_json(await reports.set_state(services, args.id, args.as_user, state[args.action]))
            case "resolve":
                return reports.report_json(
                    await reports.resolve(services, args.id, args.as_user, action=args.take, reason=args.reason or "")
                )
            case "forward":
                return {"forwarded_to": await reports.forward(services, args.id, args.as_user)}
            case "create":
                row = await reports.report_remote(services, args.as_user, args.uris, args.comment or "")
                return reports.report_json(row)
        return None

    print_json(asyncio.run(with_services(settings, run)))
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``mod`` and ``report`` to the ``kith`` command."""
    mod = sub.add_parser("mod", help="moderate a group").add_subparsers(dest="action", required=True)
    for action, text in MOD_ACTIONS.items():
        p = mod.add_parser(action, help=text)
        p.add_argument("group")
        p.add_argument("target", help="a post URI, an actor URI, or (for add-mod/remove-mod) a local user name")
        p.add_argument("--as", dest="as_user", required=True, help="the local moderator acting")
        p.add_argument("--reason")
        if action == "ban":
            p.add_argument("--days", type=int, help="lift the ban after this many days")
            p.add_argument("--remove-content", action="store_true", help="also remove their posts in the group")
        p.set_defaults(func=cmd_mod)
    log = mod.add_parser("log", help="the group's moderation log (with moderator names) as JSON")
    log.add_argument("group")
    log.set_defaults(func=cmd_mod_log)
    held = mod.add_parser("held", help="posts waiting for approval, as JSON")
    held.add_argument("group")
    held.set_defaults(func=cmd_mod_held)
    guards = mod.add_parser("guards", help="show or change the group's automatic guards")
    guards.add_argument("group")
    guards.add_argument("--as", dest="as_user", help="the local moderator changing them")
    guards.add_argument("--hold-first-posts", dest="hold_first_posts", type=int)
    guards.add_argument("--member-posts-per-hour", dest="member_posts_per_hour", type=int)
    guards.add_argument("--instance-posts-per-hour", dest="instance_posts_per_hour", type=int)
    guards.add_argument("--max-group-mentions", dest="max_group_mentions", type=int)
    guards.add_argument("--keyword", action="append", help="a filtered word (repeat; replaces the list)")
    guards.add_argument("--link-domain", action="append", help="a filtered link domain (repeat; replaces the list)")
    guards.add_argument("--filter-action", choices=["hold", "reject"])
    guards.set_defaults(func=cmd_mod_guards)

    crowd = mod.add_parser(
        "crowd-control",
        help="turn crowd control on or off, or set its alarm's thresholds; prints its state as JSON",
        description="While on: posts from members who joined in the last 48 hours or from servers with no "
        "post shown in the group are held, new follows wait for approval, and each member may post once per "
        "10 minutes per thread. It turns itself off after --hours, and on (raising an alarm) when the group's "
        "last 10 minutes pass a threshold.",
    )
    crowd.add_argument("group")
    crowd.add_argument("state", nargs="?", choices=["on", "off"], help="omit to only show it or set thresholds")
    crowd.add_argument("--as", dest="as_user", required=True, help="the local moderator acting")
    crowd.add_argument("--hours", type=int, default=24, help="turn itself off after this many hours (default 24)")
    crowd.add_argument(
        "--new-member-posts",
        dest="new_member_posts",
        type=int,
        help="alarm: more posts than this in 10 minutes from members who joined in the last 48 hours",
    )
    crowd.add_argument(
        "--server-share",
        dest="server_share_percent",
        type=int,
        help="alarm: one server's share of the group's posts in 10 minutes, in percent, more than this",
    )
    crowd.add_argument(
        "--server-min-posts",
        dest="server_min_posts",
        type=int,
        help="... once that server sent at least this many posts in the 10 minutes",
    )
    crowd.add_argument("--follows", type=int, help="alarm: more new follows than this in 10 minutes")
    crowd.set_defaults(func=cmd_mod_crowd)

    report = sub.add_parser("report", help="reports (Flag) in and out").add_subparsers(dest="action", required=True)
    rlist = report.add_parser("list", help="reports you may handle, as JSON")
    rlist.add_argument("--as", dest="as_user", required=True)
    rlist.add_argument("--state", choices=["open", "assigned", "resolved", "rejected"])
    rlist.add_argument("--group")
    rlist.set_defaults(func=cmd_report)
    for action in ("show", "assign", "unassign", "reject", "reopen", "forward", "resolve"):
        p = report.add_parser(action, help=f"{action} a report")
        p.add_argument("id", type=int)
        p.add_argument("--as", dest="as_user", required=True)
        if action == "resolve":
            p.add_argument("--take", choices=["remove", "ban"], help="perform this action while resolving")
            p.add_argument("--reason")
        p.set_defaults(func=cmd_report)
    create = report.add_parser("create", help="report remote posts or an account to their server")
    create.add_argument("uris", nargs="+")
    create.add_argument("--as", dest="as_user", required=True)
    create.add_argument("--comment")
    create.set_defaults(func=cmd_report)
