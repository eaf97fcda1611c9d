"""``/console/admin/domains``: domain blocks (add, edit, lift), the allowlist, the federation mode, export.

Also the servers offered as block candidates (their members banned from this instance's
groups three times in a day, ``moderation.crowd.domain_candidates``): shown with a link that
fills the Block form in. Nothing is blocked until an admin presses **Block**.

Each action is ``moderation.blocklist.store``'s, as ``kith domain`` and the Mastodon admin
API call it, under the admin's name in the audit log; this process's cached policy is
reloaded at once (others notice the new policy version within seconds).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.moderation import crowd
from server.moderation.blocklist import store
from server.moderation.blocklist.mastodon_csv import export_csv
from server.moderation.blocklist.matcher import MODES, SEVERITIES
from server.services import Services
from server.web.console.admin import PAGE, admin_page, admin_render, done, int_param, path_id
from server.web.console.common import Console

FLAGS = ("reject_media", "reject_reports", "obfuscate")


async def reload_policy(services: Services) -> None:
    """The change is committed: act on it in this process now (as the admin API does)."""
    if services.blocklist is not None:
        await services.blocklist.reload()


def block_settings(console: Console) -> dict[str, object]:
    """A block's settings as the form submits them (an unticked box is absent: False)."""
    return {
        "severity": console.field("severity", "suspend") or "suspend",
        "public_comment": console.field("public_comment"),
        "private_comment": console.field("private_comment"),
        **{flag: console.field(flag) == "on" for flag in FLAGS},
    }


@admin_page
async def domains(request: Request, console: Console) -> Response:
    """Blocks (newest first, paged), the allowlist (paged) and the mode, with their forms."""
    max_id = int_param(request, "max_id")
    allow_max = int_param(request, "allow_max_id")
    async with console.services.db.read() as conn:
        blocks = await store.page(conn, store.BLOCKS, max_id=max_id, limit=PAGE + 1)
        allows = await store.page(conn, store.ALLOWS, max_id=allow_max, limit=PAGE + 1)
        mode = await store.federation_mode(conn)
        total = await store.count(conn, store.BLOCKS)
        candidates = await crowd.domain_candidates(conn)
    policy = console.services.blocklist.policy
    candidates = [c for c in candidates if policy.block_for(c.domain) is None]  # offered until blocked
    prefill = console_prefill(request, {c.domain for c in candidates})
    context = {
        "candidates": candidates,
        "prefill": prefill,
        "blocks": blocks[:PAGE],
        "next_max": blocks[PAGE - 1].id if len(blocks) > PAGE else None,
        "allows": allows[:PAGE],
        "next_allow_max": allows[PAGE - 1].id if len(allows) > PAGE else None,
        "paged": max_id is not None or allow_max is not None,
        "mode": mode,
        "modes": MODES,
        "severities": SEVERITIES,
        "total": total,
    }
    return admin_render(request, console, "console/admin_domains.html", "domains", **context)


def console_prefill(request: Request, offered: set[str]) -> str:
    """The candidate a "Review" link put in the Block form (only a domain offered on this page)."""
    wanted = request.query_params.get("candidate", "")
    return wanted if wanted in offered else ""


@admin_page
async def block(request: Request, console: Console) -> Response:
    """``POST``: add a block (the **Block** button); 422 with the reason for a bad domain."""
    settings = block_settings(console)
    spec = store.BlockSpec(domain=console.field("domain"), **settings)  # type: ignore[arg-type]
    row, _effects = await store.create(
        console.services.db, store.BLOCKS, spec, actor=console.user, reason=console.field("reason")
    )
    await reload_policy(console.services)
    return done("/console/admin/domains", "blocked", row.domain)


@admin_page
async def edit_page(request: Request, console: Console) -> Response:
    async with console.services.db.read() as conn:
        row = await store.get(conn, store.BLOCKS, path_id(request))
    return admin_render(request, console, "console/admin_block.html", "domains", block=row, severities=SEVERITIES)


@admin_page
async def edit(request: Request, console: Console) -> Response:
    """``POST``: change a block's severity, flags and comments."""
    row = await store.update_block(console.services.db, path_id(request), block_settings(console), actor=console.user)
    await reload_policy(console.services)
    return done(f"/console/admin/domains/{row.id}", "saved", row.domain)


@admin_page
async def lift(request: Request, console: Console) -> Response:
    """``POST``: lift a block (what it hid comes back)."""
    row = await store.delete(console.services.db, store.BLOCKS, path_id(request), actor=console.user)
    await reload_policy(console.services)
    return done("/console/admin/domains", "lifted", row.domain)


@admin_page
async def allow(request: Request, console: Console) -> Response:
    """``POST``: put a domain on the allowlist."""
    row, _effects = await store.create(
        console.services.db, store.ALLOWS, store.AllowSpec(console.field("domain")), actor=console.user
    )
    await reload_policy(console.services)
    return done("/console/admin/domains", "allowed", row.domain)


@admin_page
async def disallow(request: Request, console: Console) -> Response:
    """``POST``: take a domain off the allowlist."""
    row = await store.delete(console.services.db, store.ALLOWS, path_id(request), actor=console.user)
    await reload_policy(console.services)
    return done("/console/admin/domains", "disallowed", row.domain)


@admin_page
async def mode(request: Request, console: Console) -> Response:
    """``POST``: ``open`` or ``allowlist``."""
    chosen = console.field("mode")
    await store.set_federation_mode(console.services.db, chosen, actor=console.user)
    await reload_policy(console.services)
    return done("/console/admin/domains", "mode", chosen)


@admin_page
async def export(request: Request, console: Console) -> Response:
    """Every block as Mastodon's CSV (``kith domain export``), as a download."""
    async with console.services.db.read() as conn:
        text = await export_csv(conn)
    filename = f"{console.services.settings.domain.split(':')[0]}_domain_blocks.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


routes = [
    Route("/console/admin/domains", domains, methods=["GET"]),
    Route("/console/admin/domains", block, methods=["POST"]),
    Route("/console/admin/domains/export.csv", export, methods=["GET"]),
    Route("/console/admin/domains/{id}", edit_page, methods=["GET"]),
    Route("/console/admin/domains/{id}", edit, methods=["POST"]),
    Route("/console/admin/domains/{id}/lift", lift, methods=["POST"]),
    Route("/console/admin/allows", allow, methods=["POST"]),
    Route("/console/admin/allows/{id}/remove", disallow, methods=["POST"]),
    Route("/console/admin/mode", mode, methods=["POST"]),
]
