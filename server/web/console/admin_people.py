"""Admin pages about people and groups: instance reports, remote account suspensions, local users, groups.

Every action is the domain's own: ``store.set_account_suspended`` (``kith account``),
``moderation.reports`` (the admin reports API), ``accounts`` and ``signin``
(``kith user``), ``groups.membership.create_group`` and ``actions.transfer_ownership``
(``kith group``). Actions on users and groups are written to the admin audit log
under the admin's name (blocks, allows and suspensions write their own).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import signin
from server.accounts import create_user, get_user, list_users, set_admin
from server.errors import BadRequest
from server.federation.actors import find_actors, suspended_page
from server.groups.following import count_members
from server.groups.membership import GroupSpec, create_group, get_group, list_groups
from server.moderation import reports as report_store
from server.moderation.actions import local_moderator, transfer_ownership
from server.moderation.authority import moderator_names
from server.moderation.blocklist import store
from server.sessions import count_for
from server.web.console.admin import PAGE, admin_page, admin_render, done, int_param, path_id
from server.web.console.admin_domains import reload_policy
from server.web.console.common import Console

REPORT_VIEWS = {"open": ("open", "assigned"), "closed": ("resolved", "rejected")}


async def audit(console: Console, action: str, target: str, reason: str = "") -> None:
    """An admin action on a user or a group, in the audit log under the admin's name."""
    async with console.services.db.transaction() as conn:
        await store.audit(conn, actor=console.user, action=action, target=target, reason=reason)


# --------------------------------------------------------------------------- instance reports


@admin_page
async def reports(request: Request, console: Console) -> Response:
    """Reports about no group (for this server's admins), open ones or closed ones, newest first, paged."""
    view = request.query_params.get("view", "open")
    states = REPORT_VIEWS.get(view)
    if states is None:
        raise BadRequest("view must be open or closed")
    max_id = int_param(request, "max_id")
    async with console.services.db.read() as conn:
        rows = await report_store.filtered(
            conn,
            report_store.ReportFilter(states=states, leader_id=None, instance_only=True),
            console.services.links,
            max_id=max_id,
            since_id=None,
            min_id=None,
            limit=PAGE + 1,
        )
        accounts = await find_actors(conn, [r.target_account for r in rows if r.target_account])
    context = {
        "reports": rows[:PAGE],
        "next_max": rows[PAGE - 1].id if len(rows) > PAGE else None,
        "view": view,
        "accounts": accounts,
    }
    return admin_render(request, console, "console/admin_reports.html", "reports", **context)


@admin_page
async def report_action(request: Request, console: Console) -> Response:
    """``POST``: resolve, reject or reopen a report; ``suspend`` suspends its account, then resolves it."""
    report_id = path_id(request)
    action = str(request.path_params["action"])
    services = console.services
    if action == "suspend":
        async with services.db.read() as conn:
            report = await report_store.get_report(conn, report_id)
        if not report.target_account:
            raise BadRequest("the report names no account")
        reason = console.field("reason") or f"report {report_id}"
        await store.set_account_suspended(services.db, report.target_account, True, actor=console.user, reason=reason)
        await reload_policy(services)
        await report_store.set_state(services, report_id, console.user, "resolved", action_taken="suspend")
        return done("/console/admin/reports", "suspended", report.target_account)
    if action == "resolve":
        await report_store.resolve(services, report_id, console.user)
        return done("/console/admin/reports", "resolved", str(report_id))
    if action in ("reject", "reopen"):
        state = "rejected" if action == "reject" else "open"
        await report_store.set_state(services, report_id, console.user, state)
        return done("/console/admin/reports", f"{action}ed", str(report_id))
    raise BadRequest("unknown action")


# --------------------------------------------------------------------------- remote accounts


@admin_page
async def accounts(request: Request, console: Console) -> Response:
    """Suspended remote accounts (paged), and the form to suspend one by its URI."""
    max_id = int_param(request, "max_id")
    async with console.services.db.read() as conn:
        rows = await suspended_page(conn, max_id=max_id, limit=PAGE + 1)
    context = {"accounts": rows[:PAGE], "next_max": rows[PAGE - 1].id if len(rows) > PAGE else None}
    return admin_render(request, console, "console/admin_accounts.html", "accounts", **context)


@admin_page
async def suspend(request: Request, console: Console) -> Response:
    """``POST``: suspend (``suspend=1``) or lift the suspension of one remote account, instance-wide."""
    uri = console.field("uri")
    on = console.field("suspend") == "1"
    await store.set_account_suspended(console.services.db, uri, on, actor=console.user, reason=console.field("reason"))
    await reload_policy(console.services)
    return done("/console/admin/accounts", "suspended" if on else "unsuspended", uri)


# --------------------------------------------------------------------------- local users


@admin_page
async def users(request: Request, console: Console) -> Response:
    """Local accounts by name (paged), each with its live sessions, and the form to create one."""
    after = request.query_params.get("after", "")[:64]
    async with console.services.db.read() as conn:
        rows = await list_users(conn, after=after, limit=PAGE + 1)
        sessions = {u.id: await count_for(conn, u.id) for u in rows[:PAGE]}
    context = {
        "users": rows[:PAGE],
        "sessions": sessions,
        "next_after": rows[PAGE - 1].name if len(rows) > PAGE else None,
        "generated": "",
    }
    return admin_render(request, console, "console/admin_users.html", "users", **context)


@admin_page
async def create_account(request: Request, console: Console) -> Response:
    """``POST``: a new local account; a generated password is shown once, on this answer only."""
    name = console.field("name").lower()
    password = console.form.get("password") if console.form is not None else None
    admin = console.field("admin") == "on"
    user, generated = await create_user(
        console.services.db, name, admin=admin, password=password if isinstance(password, str) and password else None
    )
    await audit(console, "user.create", user.name, "admin" if admin else "")
    if not generated:
        return done("/console/admin/users", "created_user", user.name)
    async with console.services.db.read() as conn:
        rows = await list_users(conn, limit=PAGE)
        sessions = {u.id: await count_for(conn, u.id) for u in rows}
    context = {"users": rows, "sessions": sessions, "next_after": None, "generated": generated, "created": user.name}
    return admin_render(request, console, "console/admin_users.html", "users", **context)


@admin_page
async def user_action(request: Request, console: Console) -> Response:
    """``POST``: make-admin, revoke-admin, disable, enable, sign-out (everywhere), as ``kith user`` does them."""
    name = str(request.path_params["name"])
    action = str(request.path_params["action"])
    db = console.services.db
    if name == console.user and action in ("revoke-admin", "disable"):
        raise BadRequest("you cannot lock yourself out: ask another admin")
    async with db.read() as conn:
        await get_user(conn, name)
    match action:
        case "make-admin" | "revoke-admin":
            await set_admin(db, name, action == "make-admin")
            notice = "made_admin" if action == "make-admin" else "revoked_admin"
        case "disable" | "enable":
            await signin.disable_account(db, name, action == "disable")
            notice = f"{action}d"
        case "sign-out":
            await signin.sign_out_everywhere(db, name)
            notice = "signed_out"
        case _:
            raise BadRequest("unknown action")
    await audit(console, f"user.{action}", name)
    return done("/console/admin/users", notice, name)


# --------------------------------------------------------------------------- groups


@admin_page
async def groups(request: Request, console: Console) -> Response:
    """Every group by name (paged), with its owner and member count; create one; hand one over."""
    after = request.query_params.get("after", "")[:64]
    async with console.services.db.read() as conn:
        every = [g for g in await list_groups(conn) if g.name > after]
        page = every[:PAGE]
        rows = [
            {"group": g, "leaders": await moderator_names(conn, g.id), "members": await count_members(conn, g.id)}
            for g in page
        ]
    context = {"groups": rows, "next_after": page[-1].name if len(every) > PAGE else None}
    return admin_render(request, console, "console/admin_groups.html", "groups", **context)


@admin_page
async def new_group(request: Request, console: Console) -> Response:
    """``POST``: a group (``kith group create``)."""
    spec = GroupSpec(
        name=console.field("name").lower(),
        title=console.field("title"),
        summary=console.field("summary"),
        owner=console.field("owner").lower() or None,
        approval=console.field("approval", "auto") or "auto",
        posting=console.field("posting", "members") or "members",
    )
    group = await create_group(console.services.db, spec)
    await audit(console, "group.create", group.name)
    return done("/console/admin/groups", "created_group", group.name)


@admin_page
async def transfer(request: Request, console: Console) -> Response:
    """``POST``: hand a group to another local account (``kith group transfer``)."""
    services = console.services
    async with services.db.read() as conn:
        group = await get_group(conn, str(request.path_params["name"]))
        by = await local_moderator(services, conn, group, console.user)
    owner = console.field("owner").lower()
    await transfer_ownership(services, group, owner, by=by)
    await audit(console, "group.transfer", group.name, f"to {owner}")
    return done("/console/admin/groups", "transferred", group.name)


routes = [
    Route("/console/admin/reports", reports, methods=["GET"]),
    Route("/console/admin/reports/{id}/{action}", report_action, methods=["POST"]),
    Route("/console/admin/accounts", accounts, methods=["GET"]),
    Route("/console/admin/accounts", suspend, methods=["POST"]),
    Route("/console/admin/users", users, methods=["GET"]),
    Route("/console/admin/users", create_account, methods=["POST"]),
    Route("/console/admin/users/{name}/{action}", user_action, methods=["POST"]),
    Route("/console/admin/groups", groups, methods=["GET"]),
    Route("/console/admin/groups", new_group, methods=["POST"]),
    Route("/console/admin/groups/{name}/transfer", transfer, methods=["POST"]),
]
