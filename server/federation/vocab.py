"""ActivityStreams helpers: small pure functions over JSON dicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PUBLIC_ALIASES = frozenset({AS_PUBLIC, "as:Public", "Public"})
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
ACTIVITY_JSON = "application/activity+json"
LD_JSON_AS = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'

# The extension terms our documents use, defined as Mastodon and Lemmy define them.
EXTENSION_CONTEXT: dict[str, Any] = {
    "toot": "http://joinmastodon.org/ns#",
    "lemmy": "https://join-lemmy.org/ns#",
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "discoverable": "toot:discoverable",
    "featured": {"@id": "toot:featured", "@type": "@id"},
    "moderators": {"@id": "lemmy:moderators", "@type": "@id"},
    "postingRestrictedToMods": "lemmy:postingRestrictedToMods",
    "sensitive": "as:sensitive",
    "votersCount": "toot:votersCount",  # a poll's voters, as Mastodon counts them
    # Profile fields, as Mastodon defines them.
    "schema": "http://schema.org#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
}
CONTEXT: list[Any] = [AS_CONTEXT, SECURITY_CONTEXT, EXTENSION_CONTEXT]


def as_list(value: Any) -> list[Any]:
    """``None`` -> ``[]``, a single value -> ``[value]``, a list unchanged."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def id_of(value: Any) -> str | None:
    """The id of a reference that is either a URI string or an embedded object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        ident = value.get("id") or value.get("href")
        return ident if isinstance(ident, str) else None
    return None


def ids_of(value: Any) -> list[str]:
    """The ids of a reference or list of references, skipping anything without one."""
    return [i for i in (id_of(v) for v in as_list(value)) if i]


def is_public(obj: dict[str, Any]) -> bool:
    """True when the Public collection is among ``to`` or ``cc`` (any of its spellings)."""
    return any(a in PUBLIC_ALIASES for a in ids_of(obj.get("to")) + ids_of(obj.get("cc")))


def iso(dt: datetime) -> str:
    """RFC 3339 UTC with a Z, as Mastodon writes it."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
