"""The rules for local names, shared by groups and users (one name space)."""

from __future__ import annotations

import re

from server.errors import BadRequest

NAME_RE = re.compile(r"^[a-z0-9_]{1,64}$")

# Names that would confuse people or collide with our own paths and roles.
RESERVED = frozenset(
    [
        "abuse",
        "about",
        "account",
        "accounts",
        "actor",
        "admin",
        "administrator",
        "all",
        "announcements",
        "api",
        "app",
        "apps",
        "auth",
        "everyone",
        "feed",
        "follow",
        "followers",
        "following",
        "groups",
        "help",
        "here",
        "host",
        "hostmaster",
        "inbox",
        "info",
        "instance",
        "kith",
        "login",
        "logout",
        "me",
        "mod",
        "moderator",
        "moderators",
        "noc",
        "nodeinfo",
        "null",
        "oauth",
        "outbox",
        "postmaster",
        "public",
        "relay",
        "root",
        "search",
        "security",
        "settings",
        "signup",
        "static",
        "status",
        "support",
        "system",
        "undefined",
        "user",
        "users",
        "webmaster",
        "well_known",
        "www",
    ]
)


class InvalidName(BadRequest):
    """A name that breaks the rules; the reason says which."""


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid, unreserved local name, else raise ``InvalidName``."""
    if not NAME_RE.match(name or ""):
        raise InvalidName(f"invalid name {name!r}: use 1-64 lowercase letters, digits and underscores")
    if name in RESERVED:
        raise InvalidName(f"the name {name!r} is reserved")
    return name
