"""``/console/groups/NAME``: a group's moderation console, for its owner, its moderators and admins.

The queue (``queue.py``) and the group's members, bans, moderators, settings (its profile
and guards) and log. Every action is a POST with the session's CSRF token that calls the
same domain function as ``kith mod``, ``kith group edit``, ``kith report`` and the API
(``moderation.actions``, ``moderation.profiles``, ``moderation.reports``,
``moderation.rulebook``), and "Post as the group" (``groups.voice``, as ``kith group post``):
logged and federated exactly as from the shell. Anyone else gets a 403 page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server import images
from server.errors import BadRequest, NotFound, PayloadTooLarge
from server.groups import routine
from server.groups.following import page_follows
from server.groups.media import media_of
from server.groups.membership import PROFILE_LIMITS, Group
from server.groups.threads import post_counts
from server.groups.voice import MAX_TEXT, post_as_group
from server.ids import MAX_ID, id_value
from server.moderation import actions, crowd, modlog, notices, reports, rulebook
from server.moderation.authority import local_role, moderator_names, remote_moderator_uris
from server.moderation.profiles import ProfileEdit, edit_profile
from server.types import utcnow
from server.web.console.common import Console, console_page, render
from server.web.console.queue import load_queue
from server.web.paging import id_param

PAGE = 50
MAX_BAN_DAYS = 3650


@dataclasses.dataclass(frozen=True)
class Moderating:
    """A console request about one group: who acts, as what."""

    console: Console
    group: Group
    by: actions.Moderator
    role: str  # owner | moderator | admin

    @property
    def services(self) -> Any:
        return self.console.services


async def _moderating(console: Console, name: str) -> Moderating:
    """The group and the acting moderator; 404 for no such group, 403 for anyone who may not moderate it."""
    group, by = await actions.group_and_moderator(console.services, name, console.user)
    async with console.services.db.read() as conn:
        role = await local_role(conn, group.id, console.user) or "admin"
    return Moderating(console, group, by, role)


def _page(request: Request, mod: Moderating, template: str, tab: str, status: int = 200, **context: Any) -> Response:
    done = request.query_params.get("done", "")
    full = {"group": mod.group, "role": mod.role, "tab": tab, "done": DONE.get(done, ""), **context}
    return render(request, template, full, status=status, session=mod.console.session)


# The Stats tab (``group_stats``) gates and renders its page the same way as these tabs.
moderating, group_page = _moderating, _page


def _int_param(request: Request, name: str) -> int:
    value = id_value(request.query_params.get(name, "0"))
    if value is None or value > 10_000:
        raise BadRequest(f"{name} must be a number from 0 to 10000")
    return value


# --------------------------------------------------------------------------- pages


async def _queue(
    request: Request, mod: Moderating, *, page: int = 0, speech: dict[str, Any] | None = None, error: str = ""
) -> Response:
    async with mod.services.db.read() as conn:
        queue = await load_queue(conn, mod.group, page=page)
        control = await crowd.load(conn, mod.group.id)
        schedules = await routine.list_schedules(conn, mod.group.id)
    crowd_state = {"on": control.on(utcnow()), "control": control, "alarm": control.turned_on_by == crowd.ALARM}
    context = {
        "queue": queue,
        "crowd": crowd_state,
        "speech": speech or {},
        "speech_error": error,
        "max_text": MAX_TEXT,
        "schedules": schedules,
        "placeholders": list(routine.PLACEHOLDERS),
    }
    return _page(request, mod, "console/queue.html", "queue", 400 if error else 200, **context)


@console_page
async def queue_page(request: Request, console: Console) -> Response:
    """The queue: what waits for a decision, oldest first; and the form to post as the group."""
    mod = await _moderating(console, request.path_params["name"])
    return await _queue(request, mod, page=_int_param(request, "page"))


@console_page
async def post_as_group_form(request: Request, console: Console) -> Response:
    """``POST .../post``: "Post as the group", through ``groups.voice.post_as_group`` (as ``kith group
    post``): its owner and moderators only (403 for an admin who does not lead it), logged as ``post``
    and sent to every member server. Text the domain refuses shows the form again, as submitted,
    with its reason and a 400."""
    mod = await _moderating(console, request.path_params["name"])
    speech = {
        "text": console.field("text"),
        "title": console.field("title"),
        "pin": console.field("pin") in ("on", "1", "true"),
    }
    try:
        await post_as_group(
            mod.services, mod.group.name, console.user, text=speech["text"], title=speech["title"], pin=speech["pin"]
        )
    except BadRequest as exc:
        return await _queue(request, mod, speech=speech, error=exc.reason)
    return RedirectResponse(f"/console/groups/{mod.group.name}?done=post", status_code=303)


@console_page
async def members_page(request: Request, console: Console) -> Response:
    """Members, newest first, with the day they joined, their server and their posts here."""
    mod = await _moderating(console, request.path_params["name"])
    async with console.services.db.read() as conn:
        rows = await page_follows(
            conn, mod.group.id, state="accepted", max_id=id_param(request, "max_id"), limit=PAGE + 1
        )
        counts = await post_counts(conn, mod.group.id, [r.actor_id for r in rows[:PAGE]])
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_url = f"?max_id={rows[-1].id}" if more else ""
    ban_target = request.query_params.get("ban", "")[:2048]  # a row's "Ban…" fills the form in
    return _page(
        request,
        mod,
        "console/members.html",
        "members",
        members=rows,
        counts=counts,
        next_url=next_url,
        ban_target=ban_target,
    )


@console_page
async def bans_page(request: Request, console: Console) -> Response:
    """Bans, newest first, with their expiry; lift one."""
    mod = await _moderating(console, request.path_params["name"])
    offset = _int_param(request, "offset")
    async with console.services.db.read() as conn:
        bans = await rulebook.list_bans(conn, mod.group.id)
    shown = [(b, rulebook.ban_in_force(b.expires_at)) for b in bans[offset : offset + PAGE]]
    next_url = f"?offset={offset + PAGE}" if len(bans) > offset + PAGE else ""
    return _page(request, mod, "console/bans.html", "bans", bans=shown, next_url=next_url)


@console_page
async def moderators_page(request: Request, console: Console) -> Response:
    """The owner, local moderators and listed remote moderators; the owner (or an admin) adds and removes."""
    mod = await _moderating(console, request.path_params["name"])
    async with console.services.db.read() as conn:
        local = await moderator_names(conn, mod.group.id)
        remote = await remote_moderator_uris(conn, mod.group.id)
    return _page(request, mod, "console/moderators.html", "moderators", local=local, remote=remote)


PROFILE_TEXTS = ("title", "summary", "benefits", "objectives", "rules", "welcome")


def _profile_of(group: Group) -> dict[str, Any]:
    """What the profile form shows for ``group`` as it is."""
    shown: dict[str, Any] = {name: getattr(group, name) for name in PROFILE_TEXTS}
    shown.update(welcome_enabled=group.welcome_enabled, approval=group.approval, posting=group.posting)
    return shown


async def _settings(
    request: Request,
    mod: Moderating,
    profile: dict[str, Any],
    *,
    error: str = "",
    media_error: str = "",
    status: int = 200,
) -> Response:
    async with mod.services.db.read() as conn:
        guards = await rulebook.load_guards(conn, mod.group.id)
        media = await media_of(conn, mod.group.id)
    context = {
        "guards": guards,
        "profile": profile,
        "error": error,
        "limits": PROFILE_LIMITS,
        "media": media,
        "media_urls": {k: mod.services.links.group_media(mod.group.name, r.file_name) for k, r in media.items()},
        "media_error": media_error,
        "shapes": images.SHAPES,
        "max_mib": images.MAX_BYTES // (1024 * 1024),
    }
    return _page(request, mod, "console/settings.html", "settings", status, **context)


@console_page
async def settings_page(request: Request, console: Console) -> Response:
    """The group's profile (purpose, rules, welcome, joining, posting) and automatic guards, both editable."""
    mod = await _moderating(console, request.path_params["name"])
    return await _settings(request, mod, _profile_of(mod.group))


def _profile_edit(console: Console) -> ProfileEdit:
    """The profile form as the domain takes it: every field given (an unticked box is off);
    ``edit_profile`` checks the values."""
    texts = {name: console.field(name) for name in PROFILE_TEXTS}
    texts["rules"] = "\n".join(line.strip() for line in texts["rules"].splitlines() if line.strip())
    return ProfileEdit(
        **texts,
        welcome_enabled=console.field("welcome_enabled") in ("on", "1", "true"),
        approval=console.field("approval"),
        posting=console.field("posting"),
    )


@console_page
async def save_profile(request: Request, console: Console) -> Response:
    """``POST .../profile``: the whole profile form, through ``moderation.profiles.edit_profile``
    (as ``kith group edit``): logged as ``edit`` and sent to the member servers as an ``Update``.
    A value the domain refuses shows the form again, as submitted, with its reason and a 400."""
    mod = await _moderating(console, request.path_params["name"])
    edit = _profile_edit(console)
    try:
        await edit_profile(mod.services, mod.group, edit, by=mod.by)
    except BadRequest as exc:
        return await _settings(request, mod, dataclasses.asdict(edit), error=exc.reason, status=400)
    return RedirectResponse(f"/console/groups/{mod.group.name}/settings?done=profile", status_code=303)


@console_page
async def save_media(request: Request, console: Console) -> Response:
    """``POST .../media``: ``kind`` (``icon``: the avatar, ``image``: the header) and the button
    pressed, ``action`` **Upload** (with ``file``) or **Remove**; through ``edit_profile`` as
    ``kith group edit --avatar``: logged as ``edit``, sent to the member servers as an ``Update``.
    A file the checks refuse shows the page again with the reason (400, 413 for one too large)."""
    mod = await _moderating(console, request.path_params["name"])
    kind = console.field("kind")
    if kind not in images.SHAPES:
        raise BadRequest("the form named no picture (avatar or header)")
    label = images.LABELS[kind]
    pressed = console.field("action")
    media: dict[str, bytes | None]
    if pressed == "remove":
        media = {kind: None}
    elif pressed == "upload":
        upload = console.file("file")
        if upload is None:
            return await _settings(
                request, mod, _profile_of(mod.group), media_error=f"{label}: choose a file first", status=400
            )
        media = {kind: await upload.read(images.MAX_BYTES + 1)}  # one byte more tells "too large"
    else:
        raise BadRequest(f"unknown action {pressed!r}")
    try:
        await edit_profile(mod.services, mod.group, ProfileEdit(), by=mod.by, media=media)
    except (BadRequest, PayloadTooLarge) as exc:
        return await _settings(
            request, mod, _profile_of(mod.group), media_error=f"{label}: {exc.reason}", status=exc.status
        )
    done = label if pressed == "upload" else f"{label}-removed"
    return RedirectResponse(f"/console/groups/{mod.group.name}/settings?done={done}", status_code=303)


@console_page
async def log_page(request: Request, console: Console) -> Response:
    """The moderation log with who acted, newest first."""
    mod = await _moderating(console, request.path_params["name"])
    async with console.services.db.read() as conn:
        entries = await modlog.entries(conn, mod.group.id, max_id=id_param(request, "max_id"), limit=PAGE + 1)
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    next_url = f"?max_id={entries[-1].id}" if more else ""
    return _page(request, mod, "console/log.html", "log", entries=entries, next_url=next_url)


# --------------------------------------------------------------------------- actions

Action = Callable[[Moderating], Awaitable[None]]
ACTIONS: dict[str, Action] = {}
DONE: dict[str, str] = {
    "profile": "Profile saved. Member servers are sent any change.",
    "post": "Posted as the group: it is on the group's page and on its way to every member server.",
    "avatar": "Avatar saved. Member servers are sent the change.",
    "header": "Header saved. Member servers are sent the change.",
    "avatar-removed": "Avatar removed. Member servers are sent the change.",
    "header-removed": "Header removed. Member servers are sent the change.",
}


def action(name: str, done: str) -> Callable[[Action], Action]:
    """Register a console action under the form's ``action`` value, with what the page then says."""

    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        DONE[name] = done
        return fn

    return register


def _target(mod: Moderating) -> str:
    target = mod.console.field("target")
    if not target:
        raise BadRequest("the form named nothing to act on")
    return target


def _reason(mod: Moderating) -> str:
    return mod.console.field("reason")[:1000]


def _ban_until(mod: Moderating) -> Any:
    raw = mod.console.field("days")
    if raw in ("", "0"):
        return None
    days = id_value(raw)
    if days is None or not 0 < days <= MAX_BAN_DAYS:
        raise BadRequest(f"the ban's days must be a whole number from 1 to {MAX_BAN_DAYS} (or empty: for good)")
    return utcnow() + timedelta(days=days)


def _remove_content(mod: Moderating) -> bool:
    return mod.console.field("remove_content") in ("on", "1", "true")


async def _report(mod: Moderating) -> int:
    report_id = id_value(mod.console.field("report"))
    if report_id is None or report_id > MAX_ID:
        raise BadRequest("the form named no report")
    async with mod.services.db.read() as conn:
        report = await reports.get_report(conn, report_id)
    if report.group_id != mod.group.id:
        raise NotFound("no such report in this group")
    return report.id


@action("dismiss-alarm", "Alarm dismissed.")
async def _dismiss_alarm(mod: Moderating) -> None:
    alarm_id = id_value(mod.console.field("alarm"))
    if alarm_id is None or alarm_id > MAX_ID:
        raise BadRequest("the form named no alarm")
    async with mod.services.db.transaction() as conn:
        if not await notices.dismiss_alarm(conn, mod.group.id, alarm_id):
            raise NotFound("no such alarm in this group")


@action("approve-follow", "Follow request approved.")
async def _approve_follow(mod: Moderating) -> None:
    await actions.decide_follow_request(mod.services, mod.group, _target(mod), True, by=mod.by)


@action("reject-follow", "Follow request rejected.")
async def _reject_follow(mod: Moderating) -> None:
    await actions.decide_follow_request(mod.services, mod.group, _target(mod), False, by=mod.by)


@action("approve-post", "Post approved: it is shown and shared with the members.")
async def _approve_post(mod: Moderating) -> None:
    await actions.decide_held_post(mod.services, mod.group, _target(mod), True, by=mod.by, reason=_reason(mod))


@action("reject-post", "Post rejected.")
async def _reject_post(mod: Moderating) -> None:
    await actions.decide_held_post(mod.services, mod.group, _target(mod), False, by=mod.by, reason=_reason(mod))


@action("remove", "Post removed.")
async def _remove(mod: Moderating) -> None:
    await actions.remove_post(mod.services, mod.group, _target(mod), by=mod.by, reason=_reason(mod))


@action("restore", "Post restored.")
async def _restore(mod: Moderating) -> None:
    await actions.restore_post(mod.services, mod.group, _target(mod), by=mod.by, reason=_reason(mod))


@action("lock", "Thread locked.")
async def _lock(mod: Moderating) -> None:
    await actions.set_locked(mod.services, mod.group, _target(mod), True, by=mod.by, reason=_reason(mod))


@action("unlock", "Thread unlocked.")
async def _unlock(mod: Moderating) -> None:
    await actions.set_locked(mod.services, mod.group, _target(mod), False, by=mod.by, reason=_reason(mod))


@action("pin", "Thread pinned.")
async def _pin(mod: Moderating) -> None:
    await actions.set_pinned(mod.services, mod.group, _target(mod), True, by=mod.by)


@action("unpin", "Thread unpinned.")
async def _unpin(mod: Moderating) -> None:
    await actions.set_pinned(mod.services, mod.group, _target(mod), False, by=mod.by)


@action("ban", "Banned.")
async def _ban(mod: Moderating) -> None:
    target = mod.console.field("author") or _target(mod)  # a held post's form names its author
    if target == mod.by.uri:
        raise BadRequest("you cannot ban yourself")
    await actions.ban(
        mod.services,
        mod.group,
        target,
        by=mod.by,
        reason=_reason(mod),
        expires_at=_ban_until(mod),
        remove_content=_remove_content(mod),
    )


@action("unban", "Ban lifted.")
async def _unban(mod: Moderating) -> None:
    await actions.unban(mod.services, mod.group, _target(mod), by=mod.by, reason=_reason(mod))


@action("resolve", "Report resolved.")
async def _resolve(mod: Moderating) -> None:
    await reports.resolve(mod.services, await _report(mod), mod.console.user, reason=_reason(mod))


@action("resolve-remove", "Report resolved: the reported posts are removed.")
async def _resolve_remove(mod: Moderating) -> None:
    await reports.resolve(mod.services, await _report(mod), mod.console.user, action="remove", reason=_reason(mod))


@action("resolve-ban", "Report resolved: the reported account is banned.")
async def _resolve_ban(mod: Moderating) -> None:
    await reports.resolve(
        mod.services,
        await _report(mod),
        mod.console.user,
        action="ban",
        reason=_reason(mod),
        ban_until=_ban_until(mod),
        remove_content=_remove_content(mod),
    )


@action("reject-report", "Report rejected: nothing to act on.")
async def _reject_report(mod: Moderating) -> None:
    await reports.set_state(mod.services, await _report(mod), mod.console.user, "rejected")


@action("forward", "Report forwarded (without the reporter's name).")
async def _forward(mod: Moderating) -> None:
    await reports.forward(mod.services, await _report(mod), mod.console.user)


@action("add-schedule", "Recurring thread added.")
async def _add_schedule(mod: Moderating) -> None:
    field = mod.console.field
    spec = routine.ScheduleSpec(
        title=field("title"),
        text=field("text"),
        every=field("every"),
        start=field("start") or None,
        timezone=field("timezone") or "UTC",
    )
    async with mod.services.db.transaction() as conn:  # as `kith group schedule add`
        await routine.add_schedule(conn, mod.group, mod.console.user, spec)


@action("remove-schedule", "Recurring thread removed.")
async def _remove_schedule(mod: Moderating) -> None:
    schedule_id = id_value(_target(mod))
    if schedule_id is None or schedule_id > MAX_ID:
        raise BadRequest("the form named no schedule")
    async with mod.services.db.transaction() as conn:
        await routine.remove_schedule(conn, mod.group, schedule_id, mod.console.user)


@action("add-mod", "Moderator added.")
async def _add_mod(mod: Moderating) -> None:
    await actions.set_moderator(mod.services, mod.group, _target(mod), True, by=mod.by)


@action("remove-mod", "Moderator removed.")
async def _remove_mod(mod: Moderating) -> None:
    await actions.set_moderator(mod.services, mod.group, _target(mod), False, by=mod.by)


def _hours(mod: Moderating) -> int:
    raw = mod.console.field("hours") or "24"
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        raise BadRequest("hours must be a whole number")
    return int(raw)  # crowd.switch checks the range


@action("crowd-on", "Crowd control is on.")
async def _crowd_on(mod: Moderating) -> None:
    async with mod.services.db.transaction() as conn:  # as `kith mod crowd-control GROUP on`
        await crowd.switch(conn, mod.services.db, mod.group, on=True, by=mod.by.name, hours=_hours(mod))


@action("crowd-off", "Crowd control is off.")
async def _crowd_off(mod: Moderating) -> None:
    async with mod.services.db.transaction() as conn:
        await crowd.switch(conn, mod.services.db, mod.group, on=False, by=mod.by.name)


def _list_field(mod: Moderating, name: str) -> list[str]:
    return [line.strip() for line in mod.console.field(name).splitlines() if line.strip()]


def _number_field(mod: Moderating, name: str) -> int:
    value = id_value(mod.console.field(name) or "0")
    if value is None or value > MAX_ID:
        raise BadRequest(f"{name.replace('_', ' ')} must be a whole number")
    return value


@action("guards", "Guards saved.")
async def _guards(mod: Moderating) -> None:
    changes: dict[str, Any] = {
        name: _number_field(mod, name)
        for name in ("hold_first_posts", "member_posts_per_hour", "instance_posts_per_hour", "max_group_mentions")
    }
    changes["keywords"] = _list_field(mod, "keywords")
    changes["link_domains"] = _list_field(mod, "link_domains")
    changes["filter_action"] = mod.console.field("filter_action")
    async with mod.services.db.transaction() as conn:  # as `kith mod guards` and the API do
        await rulebook.save_guards(conn, mod.services.db, mod.group.id, changes)


TABS = {"queue": "", "members": "/members", "bans": "/bans", "moderators": "/moderators", "settings": "/settings"}


@console_page
async def act(request: Request, console: Console) -> Response:
    """``POST .../act``: ``action`` (a button's value), ``target``, ``reason``, ``report``, ``days``,
    ``remove_content``; then back to the page the form was on, which says what was done."""
    mod = await _moderating(console, request.path_params["name"])
    name = console.field("action")
    handler = ACTIONS.get(name)
    if handler is None:
        raise BadRequest(f"unknown action {name!r}")
    await handler(mod)
    back = console.field("back")
    suffix = TABS.get(back, "/log" if back == "log" else "")
    query = {"done": name}
    if back == "queue" and console.field("page").isdigit():
        query["page"] = console.field("page")
    return RedirectResponse(f"/console/groups/{mod.group.name}{suffix}?{urlencode(query)}", status_code=303)


base = "/console/groups/{name}"
routes = [
    Route(base, queue_page, methods=["GET"]),
    Route(base + "/members", members_page, methods=["GET"]),
    Route(base + "/bans", bans_page, methods=["GET"]),
    Route(base + "/moderators", moderators_page, methods=["GET"]),
    Route(base + "/settings", settings_page, methods=["GET"]),
    Route(base + "/profile", save_profile, methods=["POST"]),
    Route(base + "/post", post_as_group_form, methods=["POST"]),
    Route(base + "/media", save_media, methods=["POST"]),
    Route(base + "/log", log_page, methods=["GET"]),
    Route(base + "/act", act, methods=["POST"]),
]
