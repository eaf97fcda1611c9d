"""``/console/admin/import``: Mastodon's blocklist CSV, previewed line by line, then applied in the background.

Upload (or paste) a CSV: it is kept as a ``blocklist_imports`` row and nothing changes. The
preview shows every line as added, changed (which settings, from what), unchanged or
refused (with the reason). **Apply** queues it for the worker, which applies it one line
per transaction; the page shows a progress bar that ``static/admin.js`` moves by polling
``/console/admin/imports/ID/progress`` (JSON); without JavaScript the page refreshes itself.
The preview is compared again on **Apply**: if the stored blocks changed meanwhile, the new
preview is shown instead of applying something the admin did not see.
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.errors import BadRequest
from server.moderation.blocklist import imports
from server.moderation.blocklist.imports import Preview
from server.web.console.admin import admin_page, admin_render, done, int_param, path_id
from server.web.console.common import Console

SHOWN = 100  # preview lines per section and page


def fingerprint(preview: Preview) -> str:
    """What the preview promised, so that Apply can tell whether it still holds."""
    parts = [
        *(f"+{c.line}:{c.spec.domain}" for c in preview.added),
        *(f"~{c.line}:{c.spec.domain}:{','.join(c.fields)}" for c in preview.changed),
        *(f"={c.line}:{c.spec.domain}" for c in preview.unchanged),
        *(f"!{line}" for line, _domain, _why in preview.refused),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


async def _read_upload(console: Console) -> str:
    """The CSV from the file field, else from the text area."""
    form = console.form
    upload = form.get("file") if form is not None else None
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(imports.MAX_CSV + 1)
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequest("the file is not UTF-8 text") from None
    text = form.get("text") if form is not None else None
    return text if isinstance(text, str) else ""


@admin_page
async def import_page(request: Request, console: Console) -> Response:
    return admin_render(request, console, "console/admin_import.html", "domains")


@admin_page
async def upload(request: Request, console: Console) -> Response:
    """``POST``: keep the CSV and show its preview (nothing is applied yet)."""
    import_id = await imports.upload(console.services.db, await _read_upload(console), actor=console.user)
    return done(f"/console/admin/imports/{import_id}", "")


def _section(items: list, page: int | None) -> tuple[list, int, int]:
    pages = max(1, -(-len(items) // SHOWN))
    current = min(max(1, page or 1), pages)
    return items[(current - 1) * SHOWN : current * SHOWN], current, pages


@admin_page
async def show(request: Request, console: Console) -> Response:
    """The preview (before Apply), the progress bar (while it runs) or the result."""
    item = await imports.get_import(console.services.db, path_id(request))
    context: dict[str, object] = {"item": item, "refresh": item.state == "queued"}
    if item.state == "preview":
        preview = await imports.preview_text(console.services.db, item.csv)
        sections = {}
        for name in ("added", "changed", "unchanged", "refused"):
            rows = getattr(preview, name)
            shown, page, pages = _section(rows, int_param(request, f"{name}_page"))
            sections[name] = {"rows": shown, "count": len(rows), "page": page, "pages": pages}
        context.update(preview=preview, sections=sections, fingerprint=fingerprint(preview))
    return admin_render(request, console, "console/admin_import_job.html", "domains", **context)


@admin_page
async def apply(request: Request, console: Console) -> Response:
    """``POST``: queue the import, if the preview the admin saw still holds."""
    import_id = path_id(request)
    item = await imports.get_import(console.services.db, import_id)
    if item.state == "preview":
        preview = await imports.preview_text(console.services.db, item.csv)
        if fingerprint(preview) != console.field("fingerprint"):
            return done(f"/console/admin/imports/{import_id}", "stale")
    await imports.apply(console.services.db, import_id)
    if console.services.wake is not None:
        console.services.wake.set()
    return done(f"/console/admin/imports/{import_id}", "")


@admin_page
async def discard(request: Request, console: Console) -> Response:
    await imports.discard(console.services.db, path_id(request))
    return done("/console/admin/domains", "discarded")


@admin_page
async def progress(request: Request, console: Console) -> Response:
    """``GET``: how far an import has come, as JSON for ``static/admin.js``."""
    item = await imports.get_import(console.services.db, path_id(request))
    return JSONResponse(
        {
            "state": item.state,
            "done": item.done,
            "total": item.total,
            "percent": item.percent,
            "added": item.added,
            "updated": item.updated,
            "error": item.last_error if item.state == "dead" else None,
        }
    )


routes = [
    Route("/console/admin/import", import_page, methods=["GET"]),
    Route("/console/admin/import", upload, methods=["POST"]),
    Route("/console/admin/imports/{id}", show, methods=["GET"]),
    Route("/console/admin/imports/{id}/apply", apply, methods=["POST"]),
    Route("/console/admin/imports/{id}/discard", discard, methods=["POST"]),
    Route("/console/admin/imports/{id}/progress", progress, methods=["GET"]),
]
