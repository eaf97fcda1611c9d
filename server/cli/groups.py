"""``kith group ...``: creating groups, editing their profile, showing them, deciding follow requests, schedules."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from server.cli.common import print_json, with_db, with_services
from server.settings import Settings

if TYPE_CHECKING:  # the commands import what they use when they run, to start fast
    from sqlalchemy.ext.asyncio import AsyncConnection

    from server.db import Database
    from server.groups.membership import Group
    from server.services import Services


def _group_json(settings: Settings, group: Group, **extra: Any) -> dict[str, Any]:
    from server.links import Links

    links = Links(settings.base_url)
    return {
        "name": group.name,
        "handle": f"@{group.name}@{settings.domain}",
        "id": links.group(group.name),
        "title": group.title,
        "summary": group.summary,
        "approval": group.approval,
        "posting": group.posting,
        "rules": [r for r in group.rules.splitlines() if r.strip()],
        "benefits": group.benefits,
        "objectives": group.objectives,
        "welcome": group.welcome if group.welcome_enabled else None,
        "created_at": group.created_at.isoformat(),
        **extra,
    }


def cmd_group_create(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.membership import GroupSpec, create_group

    spec = GroupSpec(
        name=args.name,
        title=args.title or "",
        summary=args.summary or "",
        owner=args.owner,
        approval=args.approval,
        posting=args.posting,
        rules="\n".join(args.rule),
    )

    async def run(db: Database) -> Group:
        return await create_group(db, spec)

    group = asyncio.run(with_db(settings, run))
    print_json(_group_json(settings, group))
    return 0


def _read_picture(path: str) -> bytes:
    """An image file's bytes, read no further than one byte past the cap (``prepare`` says "too large")."""
    from server.errors import BadRequest
    from server.images import MAX_BYTES

    try:
        with open(path, "rb") as f:
            return f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise BadRequest(f"cannot read {path}: {exc.strerror or exc}") from None


def _pictures(args: argparse.Namespace) -> dict[str, bytes | None]:
    """``--avatar``/``--header`` files to set and ``--remove-avatar``/``--remove-header``, by kind."""
    media: dict[str, bytes | None] = {}
    for kind, path, remove in (("icon", args.avatar, args.remove_avatar), ("image", args.header, args.remove_header)):
        if path is not None:
            media[kind] = _read_picture(path)
        elif remove:
            media[kind] = None
    return media


async def _media_json(conn: AsyncConnection, settings: Settings, group: Group) -> dict[str, str | None]:
    """The group's ``avatar`` and ``header`` URLs (None: it has none)."""
    from server.groups.media import media_of
    from server.links import Links

    refs, links = await media_of(conn, group.id), Links(settings.base_url)
    return {
        label: links.group_media(group.name, refs[kind].file_name) if kind in refs else None
        for kind, label in (("icon", "avatar"), ("image", "header"))
    }


def cmd_group_edit(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.actions import group_and_moderator
    from server.moderation.profiles import ProfileEdit, edit_profile

    edit = ProfileEdit(
        title=args.title,
        summary=args.summary,
        benefits=args.benefits,
        objectives=args.objectives,
        rules="\n".join(args.rule) if args.rule is not None else None,
        welcome=args.welcome,
        welcome_enabled=args.welcome_enabled,
        approval=args.approval,
        posting=args.posting,
    )

    async def run(services: Services) -> dict[str, Any]:
        group, by = await group_and_moderator(services, args.name, args.as_user)
        media = _pictures(args)  # after the check: who may not edit learns nothing of the files
        group = await edit_profile(services, group, edit, by=by, media=media)
        async with services.db.read() as conn:
            return _group_json(settings, group, **await _media_json(conn, settings, group))

    print_json(asyncio.run(with_services(settings, run)))
    return 0


def cmd_group_post(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.posts import Post
    from server.groups.voice import post_as_group

    async def run(services: Services) -> Post:
        return await post_as_group(services, args.name, args.as_user, text=args.text, title=args.title, pin=args.pin)

    post = asyncio.run(with_services(settings, run))
    print_json(
        {"uri": post.uri, "url": post.url, "id": post.id, "title": post.name, "pinned": post.pinned_at is not None}
    )
    return 0


def cmd_group_poll(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from server.groups.polls import create_poll
    from server.groups.posts import Post

    async def run(services: Services) -> Post:
        return await create_poll(
            services,
            args.name,
            args.as_user,
            question=args.question,
            options=args.option or [],
            multiple=args.multiple,
            hours=args.hours,
        )

    post = asyncio.run(with_services(settings, run))
    question = json.loads(post.raw)
    key = "anyOf" if args.multiple else "oneOf"
    print_json(
        {
            "uri": post.uri,
            "url": post.url,
            "id": post.id,
            "options": [o["name"] for o in question[key]],
            "multiple": args.multiple,
            "ends": question["endTime"],
        }
    )
    return 0


def cmd_group_list(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.following import count_members
    from server.groups.membership import list_groups

    async def run(db: Database) -> list[dict[str, Any]]:
        async with db.read() as conn:
            return [_group_json(settings, g, members=await count_members(conn, g.id)) for g in await list_groups(conn)]

    print_json(asyncio.run(with_db(settings, run)))
    return 0


def cmd_group_show(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.following import count_members, list_follows
    from server.groups.membership import get_group
    from server.moderation.authority import moderator_names

    async def run(db: Database) -> dict[str, Any]:
        async with db.read() as conn:
            g = await get_group(conn, args.name)
            pending = await list_follows(conn, g.id, "pending")
            return _group_json(
                settings,
                g,
                members=await count_members(conn, g.id),
                pending_follows=len(pending),
                moderators=[{"name": n, "role": r} for n, r in await moderator_names(conn, g.id)],
                **await _media_json(conn, settings, g),
            )

    print_json(asyncio.run(with_db(settings, run)))
    return 0


def cmd_group_follows(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.following import list_follows
    from server.groups.membership import get_group

    async def run(db: Database) -> list[dict[str, Any]]:
        async with db.read() as conn:
            g = await get_group(conn, args.name)
            rows = await list_follows(conn, g.id, "pending" if args.pending else None)
        return [
            {
                "actor": r.actor_uri,
                "handle": f"@{r.preferred_username}@{r.domain}" if r.preferred_username else None,
                "state": r.state,
                "requested_at": r.created_at.isoformat(),
            }
            for r in rows
        ]

    print_json(asyncio.run(with_db(settings, run)))
    return 0


def cmd_group_decide(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.following import decide_follow
    from server.services import Services

    async def run() -> str:
        services = await Services.open(settings)
        try:
            return await decide_follow(services, args.name, args.actor, approve=args.action == "approve")
        finally:
            await services.close()

    state = asyncio.run(run())
    print(f"{args.actor}: {state}")
    return 0


def cmd_group_transfer(settings: Settings, args: argparse.Namespace) -> int:
    from server.cli.common import with_services
    from server.groups.membership import get_group
    from server.moderation.actions import Moderator, transfer_ownership

    async def run(services: Services) -> None:
        async with services.db.read() as conn:
            group = await get_group(conn, args.name)
        await transfer_ownership(services, group, args.owner, by=Moderator("cli", services.links.instance_actor))

    asyncio.run(with_services(settings, run))
    print(f"{args.owner} now owns {args.name}")
    return 0


def _weeks(raw: str) -> int:
    from server.groups.figures import MAX_WEEKS

    if not (len(raw) <= 2 and raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_WEEKS:
        raise argparse.ArgumentTypeError(f"--weeks must be a whole number from 1 to {MAX_WEEKS}")
    return int(raw)


def cmd_group_stats(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.figures import text_table
    from server.groups.membership import get_group
    from server.groups.stats import group_figures

    async def run(db: Database) -> Any:
        async with db.read() as conn:
            return await group_figures(conn, await get_group(conn, args.name), weeks=args.weeks)

    figures = asyncio.run(with_db(settings, run))
    if args.json:
        print_json(figures.as_json())
    else:
        print(text_table(figures), end="")
    return 0


def cmd_schedule_add(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.membership import get_group
    from server.groups.routine import ScheduleSpec, add_schedule

    spec = ScheduleSpec(title=args.title, text=args.text, every=args.every, start=args.start, timezone=args.timezone)

    async def run(db: Database) -> dict[str, Any]:
        async with db.transaction() as conn:
            group = await get_group(conn, args.name)
            return (await add_schedule(conn, group, args.as_user, spec)).as_json()

    print_json(asyncio.run(with_db(settings, run)))
    return 0


def cmd_schedule_list(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.membership import get_group
    from server.groups.routine import list_schedules

    async def run(db: Database) -> list[dict[str, Any]]:
        async with db.read() as conn:
            group = await get_group(conn, args.name)
            return [s.as_json() for s in await list_schedules(conn, group.id)]

    print_json(asyncio.run(with_db(settings, run)))
    return 0


def _schedule_id(raw: str) -> int:
    if not (len(raw) <= 12 and raw.isascii() and raw.isdigit()):
        raise argparse.ArgumentTypeError("ID must be a schedule's number, as `kith group schedule list` shows it")
    return int(raw)


def cmd_schedule_remove(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.membership import get_group
    from server.groups.routine import remove_schedule

    async def run(db: Database) -> dict[str, Any]:
        async with db.transaction() as conn:
            group = await get_group(conn, args.name)
            return (await remove_schedule(conn, group, args.id, args.as_user)).as_json()

    print_json({"removed": asyncio.run(with_db(settings, run))})
    return 0


def _add_schedule_parsers(group: Any) -> None:
    """``kith group schedule add|list|remove``."""
    from server.groups.routine import PLACEHOLDERS

    schedule = group.add_parser("schedule", help="recurring threads the group posts by itself")
    actions = schedule.add_subparsers(dest="schedule_action", required=True)
    add = actions.add_parser(
        "add",
        help="post a thread every day, week or month (the owner or a moderator)",
        epilog="placeholders in --title and --text: "
        + "; ".join(f"{{{k}}} {v}" for k, v in PLACEHOLDERS.items())
        + " (in the schedule's time zone; {{ and }} are literal braces)",
    )
    add.add_argument("name")
    add.add_argument("--as", dest="as_user", required=True, help="the owner or a moderator")
    add.add_argument("--title", required=True, help="the thread's title, at most 200 characters; placeholders allowed")
    add.add_argument("--text", required=True, help="plain text, at most 5000 characters; placeholders allowed")
    add.add_argument("--every", required=True, choices=["day", "week", "month"])
    add.add_argument(
        "--start", help="the first occurrence, local ISO date and time (2026-12-07T09:00); default: the next full hour"
    )
    add.add_argument("--timezone", default="UTC", help="an IANA zone such as Europe/Berlin (default UTC)")
    add.set_defaults(func=cmd_schedule_add)
    slist = actions.add_parser("list", help="a group's schedules as JSON, the soonest first")
    slist.add_argument("name")
    slist.set_defaults(func=cmd_schedule_list)
    remove = actions.add_parser("remove", help="stop a schedule (its threads stay)")
    remove.add_argument("name")
    remove.add_argument("id", type=_schedule_id)
    remove.add_argument("--as", dest="as_user", help="check that this account leads the group")
    remove.set_defaults(func=cmd_schedule_remove)


def add_parsers(sub: Any) -> None:
    """Add ``group``."""
    group = sub.add_parser("group", help="groups").add_subparsers(dest="action", required=True)
    gcreate = group.add_parser("create", help="create a group actor")
    gcreate.add_argument("name")
    gcreate.add_argument("--title")
    gcreate.add_argument("--summary")
    gcreate.add_argument("--owner")
    gcreate.add_argument("--rule", action="append", default=[], help="a group rule; repeat for each rule")
    gcreate.add_argument("--approval", choices=["auto", "manual"], default="auto")
    gcreate.add_argument("--posting", choices=["members", "anyone", "moderators"], default="members")
    gcreate.set_defaults(func=cmd_group_create)
    gedit = group.add_parser("edit", help="change a group's profile (its leaders); members' servers get an Update")
    gedit.add_argument("name")
    gedit.add_argument("--as", dest="as_user", required=True, help="the owner, a moderator or an admin")
    gedit.add_argument("--title")
    gedit.add_argument("--summary", help="the purpose, shown as the group's bio")
    gedit.add_argument("--benefits", help="what members gain")
    gedit.add_argument("--objectives", help="what the group sets out to do (the profile's Purpose field)")
    gedit.add_argument("--rule", action="append", help="a rule; repeat for each (replaces all rules)")
    gedit.add_argument("--welcome", help="the direct message each new member gets")
    gedit.add_argument("--welcome-on", dest="welcome_enabled", action="store_const", const=True)
    gedit.add_argument("--welcome-off", dest="welcome_enabled", action="store_const", const=False)
    gedit.add_argument("--approval", choices=["auto", "manual"])
    gedit.add_argument("--posting", choices=["members", "anyone", "moderators"])
    avatar = gedit.add_mutually_exclusive_group()
    avatar.add_argument("--avatar", metavar="FILE", help="PNG, JPEG or WebP (at most 8 MiB), cropped to 400x400")
    avatar.add_argument("--remove-avatar", action="store_true")
    header = gedit.add_mutually_exclusive_group()
    header.add_argument("--header", metavar="FILE", help="PNG, JPEG or WebP (at most 8 MiB), cropped to 1500x500")
    header.add_argument("--remove-header", action="store_true")
    gedit.set_defaults(func=cmd_group_edit, welcome_enabled=None)
    gpost = group.add_parser("post", help="post as the group (its owner or a moderator); members' servers get it")
    gpost.add_argument("name")
    gpost.add_argument("--as", dest="as_user", required=True, help="the owner or a moderator")
    gpost.add_argument("--text", required=True, help="plain text, at most 5000 characters; URLs become links")
    gpost.add_argument("--title", help="the thread's title, at most 200 characters")
    gpost.add_argument("--pin", action="store_true", help="also pin it to the group's featured posts")
    gpost.set_defaults(func=cmd_group_post)
    gpoll = group.add_parser("poll", help="ask the members as the group (its owner or a moderator): a poll")
    gpoll.add_argument("name")
    gpoll.add_argument("--as", dest="as_user", required=True, help="the owner or a moderator")
    gpoll.add_argument("--question", required=True, help="plain text, at most 5000 characters")
    gpoll.add_argument("--option", action="append", help="an answer (2 to 10, unique, at most 100 characters each)")
    gpoll.add_argument("--multiple", action="store_true", help="voters may pick several answers")
    gpoll.add_argument("--hours", type=int, default=24, help="how long it is open: 1 to 720 hours (24)")
    gpoll.set_defaults(func=cmd_group_poll)
    group.add_parser("list", help="list groups as JSON").set_defaults(func=cmd_group_list)
    gshow = group.add_parser("show", help="one group as JSON")
    gshow.add_argument("name")
    gshow.set_defaults(func=cmd_group_show)
    gfollows = group.add_parser("follows", help="members and pending follow requests as JSON")
    gfollows.add_argument("name")
    gfollows.add_argument("--pending", action="store_true", help="only requests awaiting a decision")
    gfollows.set_defaults(func=cmd_group_follows)
    gtransfer = group.add_parser("transfer", help="hand a group to another account (the old owner stays a moderator)")
    gtransfer.add_argument("name")
    gtransfer.add_argument("owner", help="the new owner's user name")
    gtransfer.set_defaults(func=cmd_group_transfer)
    gstats = group.add_parser("stats", help="how a group is doing: active members, joins and leaves, posts, replies")
    gstats.add_argument("name")
    gstats.add_argument("--json", action="store_true", help="JSON instead of a table")
    gstats.add_argument("--weeks", type=_weeks, default=12, help="how many ISO weeks, the current one last (1-52)")
    gstats.set_defaults(func=cmd_group_stats)
    _add_schedule_parsers(group)
    for action, text in (("approve", "accept a pending follow"), ("reject", "refuse a pending follow")):
        decide = group.add_parser(action, help=text)
        decide.add_argument("name")
        decide.add_argument("actor", help="the follower's actor URI, as `kith group follows` lists it")
        decide.set_defaults(func=cmd_group_decide)
