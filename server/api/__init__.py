"""The Mastodon-compatible client and admin API, with its OAuth 2 endpoints, and Kith's own API."""

from __future__ import annotations

from starlette.routing import Route

from server.api import dashboard, mastodon, oauth_routes, openapi, reports

# Kith's own API (/api/kith/v1): its routes are built from the operations its OpenAPI description lists.
routes: list[Route] = [*oauth_routes.routes, *mastodon.routes, *dashboard.routes, *reports.routes, *openapi.routes]
