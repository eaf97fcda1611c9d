"""Jinja2 templates for people's pages (autoescaped), each answered with the same security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.templating import Jinja2Templates

# No page runs script: none of ours does, and remote HTML is sanitised on the way in, so
# the policy allows none at all, in case anything ever slips through. Styles come from
# /static only (``style-src-attr``: the poll bars' computed widths); no page may be framed.
# No form-action: the login form's answer redirects to the client's own redirect URI.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}


class PageTemplates(Jinja2Templates):
    """``Jinja2Templates`` whose every response carries ``PAGE_HEADERS`` (a caller's own win)."""

    def TemplateResponse(self, *args: Any, **kwargs: Any) -> Any:  # Starlette's name
        response = super().TemplateResponse(*args, **kwargs)
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


templates = PageTemplates(directory=str(Path(__file__).parent / "templates"))
# Templates ship with the code and change only with a deploy (a restart), so never stat
# their files: with auto_reload every get_template (each extends, import, include) did.
templates.env.auto_reload = False
