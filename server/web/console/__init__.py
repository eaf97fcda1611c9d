"""The web console: sign-in (``login``), home and account (``home``), a group's moderation (``group``)
and its figures (``group_stats``).

Server-rendered pages (Jinja2, ``static/kith.css``), no inline script; every POST carries
a CSRF token (``server.web.csrf``); ``headers`` adds the security headers to each page.
Every action calls the same domain function as ``kith mod`` and the API.
"""

from __future__ import annotations

from server.web.console import admin, group, group_stats, home, login

routes = [*login.routes, *home.routes, *group.routes, *group_stats.routes]
routes += admin.build_routes()  # /console/admin (admin*.py)
