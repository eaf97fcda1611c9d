"""``/console``: the groups one moderates with what waits in each; ``/console/account``: password and 2FA."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server import signin, two_factor
from server.accounts import authenticate
from server.groups.following import count_pending
from server.groups.membership import Group, get_group_by_id, list_groups
from server.groups.threads import count_held
from server.moderation.authority import led_groups
from server.moderation.reports import count_waiting
from server.web.console.common import Console, console_page, render

MAX_GROUPS = 200


@dataclass(frozen=True)
class GroupWaiting:
    """A group on the console's home, with how many items wait in its queue."""

    group: Group
    role: str  # owner | moderator | admin
    follows: int
    held: int
    reports: int

    @property
    def total(self) -> int:
        return self.follows + self.held + self.reports


async def waiting_in(conn: AsyncConnection, group: Group, role: str) -> GroupWaiting:
    """What waits in one group's queue."""
    return GroupWaiting(
        group,
        role,
        await count_pending(conn, group.id),
        await count_held(conn, group.id),
        await count_waiting(conn, group.id),
    )


@console_page
async def home(request: Request, console: Console) -> Response:
    """The groups this person moderates (every group, for an admin), each with its waiting count."""
    session = console.session
    async with console.services.db.read() as conn:
        led = await led_groups(conn, session.user_id)
        groups = [await get_group_by_id(conn, gid) for gid in led]
        if session.is_admin:
            groups += [g for g in await list_groups(conn) if g.id not in led][: MAX_GROUPS - len(groups)]
        rows = [await waiting_in(conn, g, led.get(g.id, "admin")) for g in sorted(groups, key=lambda g: g.name)]
    return render(request, "console/home.html", {"groups": rows}, session=session)


@console_page
async def account(request: Request, console: Console) -> Response:
    """Change the password; turn two-factor sign-in on or off."""
    return await _account_page(request, console)


async def _account_page(
    request: Request, console: Console, *, message: str = "", recovery: list[str] | None = None, status: int = 200
) -> Response:
    session = console.session
    async with console.services.db.read() as conn:
        on = await two_factor.enabled(conn, session.user_id)
        pending = await two_factor.pending_secret(conn, session.user_id)
        left = await two_factor.recovery_codes_left(conn, session.user_id) if on else 0
    uri = two_factor.provisioning_uri(pending, session.username, console.services.settings.domain) if pending else ""
    context = {
        "two_factor_on": on,
        "pending_secret": pending,
        "provisioning_uri": uri,
        "recovery_left": left,
        "recovery": recovery or [],
        "message": message,
    }
    return render(request, "console/account.html", context, session=session, status=status)


@console_page
async def change_password(request: Request, console: Console) -> Response:
    """``current``, ``new`` and ``confirm``: the other sessions end."""
    new = console.field("new")
    if new != console.field("confirm"):
        return await _account_page(request, console, message="The new passwords do not match.", status=400)
    ended = await signin.change_password(console.services.db, console.session, console.field("current"), new)
    suffix = f" {ended} other session{'s' if ended != 1 else ''} signed out." if ended else ""
    return await _account_page(request, console, message="Password changed." + suffix)


@console_page
async def two_factor_begin(request: Request, console: Console) -> Response:
    async with console.services.db.transaction() as conn:
        await two_factor.begin(conn, console.session.user_id)
    return await _account_page(request, console)


@console_page
async def two_factor_confirm(request: Request, console: Console) -> Response:
    async with console.services.db.transaction() as conn:
        codes = await two_factor.confirm(conn, console.session.user_id, console.field("code"))
    message = "Two-factor sign-in is on. Keep these recovery codes somewhere safe: each works once."
    return await _account_page(request, console, message=message, recovery=codes)


@console_page
async def two_factor_off(request: Request, console: Console) -> Response:
    """Needs the password, so that a borrowed signed-in browser cannot turn it off."""
    user = await signin.find_user(console.services.db, console.user)
    if user is None or await authenticate(console.services.db, user.name, console.field("password")) is None:
        return await _account_page(request, console, message="The password is wrong.", status=400)
    async with console.services.db.transaction() as conn:
        await two_factor.turn_off(conn, console.session.user_id)
    return await _account_page(request, console, message="Two-factor sign-in is off.")


@console_page
async def sign_out_everywhere(request: Request, console: Console) -> Response:
    await signin.sign_out_everywhere(console.services.db, console.user)
    return RedirectResponse("/login", status_code=303)


routes = [
    Route("/console", home, methods=["GET"]),
    Route("/console/account", account, methods=["GET"]),
    Route("/console/account/password", change_password, methods=["POST"]),
    Route("/console/account/two-factor", two_factor_begin, methods=["POST"]),
    Route("/console/account/two-factor/confirm", two_factor_confirm, methods=["POST"]),
    Route("/console/account/two-factor/off", two_factor_off, methods=["POST"]),
    Route("/console/account/sign-out-everywhere", sign_out_everywhere, methods=["POST"]),
]
