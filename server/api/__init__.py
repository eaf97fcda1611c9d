"""The Mastodon-compatible client and admin API, with its OAuth 2 endpoints, and Kith's own API."""

from __future__ import annotations

from starlette.routing import Route

from server.api import groups, mastodon, oauth_routes, openapi, reports

routes: list[Route] = [*oauth_routes.routes, *mastodon.routes, *reports.routes, *groups.routes, *openapi.routes]
