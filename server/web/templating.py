"""Jinja2 templates for people's pages (autoescaped)."""

from __future__ import annotations

from pathlib import Path

from starlette.templating import Jinja2Templates

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# Templates ship with the code and change only with a deploy (a restart), so never stat
# their files: with auto_reload every get_template (each extends, import, include) did.
templates.env.auto_reload = False
