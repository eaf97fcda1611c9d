"""The exception tree and its one mapping to HTTP status.

Handlers raise these; ``app.py`` turns them into a response with a short, safe
reason. The detail for the log stays in ``detail`` and never reaches the client.
"""

from __future__ import annotations


class KithError(Exception):
    """Base of every error Kith raises on purpose."""

    status: int = 500

    def __init__(self, reason: str, *, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


class BadRequest(KithError):
    """Input that can never succeed as sent (malformed JSON, bad parameter)."""

    status = 400


class Unauthorized(KithError):
    """A missing or unverifiable signature or token."""

    status = 401


class Forbidden(KithError):
    """Authenticated, but not allowed (a blocked domain, a banned actor)."""

    status = 403


class NotFound(KithError):
    """No such group, user, object or remote actor."""

    status = 404


class Gone(KithError):
    """Existed once and was deleted (a tombstone)."""

    status = 410


class RequestTimeout(KithError):
    """The client took too long to send its request (a trickled body)."""

    status = 408


class PayloadTooLarge(KithError):
    """A body over the cap."""

    status = 413


class Conflict(KithError):
    """A name or record that already exists."""

    status = 409


class Unprocessable(KithError):
    """Well-formed but invalid (Mastodon answers 422 for these)."""

    status = 422


class ConfigError(KithError):
    """A bad setting; the command exits with its message."""


class ServiceUnavailable(KithError):
    """A passing failure on our side (the database could not commit): the sender should try again later."""

    status = 503
