"""Jinja2 templates for people's pages (autoescaped)."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup
from starlette.templating import Jinja2Templates

from server.groups.posts import handle_of, poll_results

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals["handle_of"] = handle_of
templates.env.globals["poll_of"] = poll_results
templates.env.filters["html"] = Markup  # only ever applied to content sanitised on arrival
