"""The Mastodon-compatible client and admin API, with its OAuth 2 endpoints."""

from __future__ import annotations

from starlette.routing import Route

from server.api import mastodon, oauth_routes

routes: list[Route] = [*oauth_routes.routes, *mastodon.routes]
