"""Which form of a new post each member server needs: pure.

A group sends a new top-level post in two forms (``server.groups.redistribute``):
``Announce(Create)``, which FEP-1b12 servers (Lemmy, Mbin, PieFed) display, and the plain
``Announce(<object>)``, which microblogging servers (Mastodon and the like) display,
ignoring the other. A server whose software is known from its NodeInfo
(``server.federation.nodeinfo``) gets only the form it displays, which halves the
requests of a fan-out to a Mastodon-heavy membership; any other server, and any server
whose software is not known, gets both, as before. Every other fan-out (a deletion, an
edit, a moderator's action) goes whole to everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Servers that display the plain Announce of a post and not the Announce of its Create.
# Forks that report their own name are listed by it (hometown); glitch-soc reports "mastodon".
PLAIN_ONLY = frozenset(
    {"mastodon", "hometown", "pleroma", "akkoma", "misskey", "sharkey", "firefish", "iceshrimp", "gotosocial"}
)
# FEP-1b12 servers: they display the Announce of the Create (and would drop the plain one).
WRAPPED_ONLY = frozenset({"lemmy", "mbin", "kbin", "piefed"})

PLAIN = "plain"
WRAPPED = "wrapped"


def forms_of(documents: Sequence[dict[str, Any]]) -> list[str | None]:
    """Each activity's form: ``wrapped`` and ``plain`` for the two Announces of one post, else None.

    Only a matching pair counts: an ``Announce`` of a ``Create`` and an ``Announce`` of that
    Create's object by its id, by the same actor. Anything else is sent to every server.
    """
    forms: list[str | None] = [None] * len(documents)
    wrapped = {
        _object_id(doc["object"].get("object")): i
        for i, doc in enumerate(documents)
        if doc.get("type") == "Announce"
        and isinstance(doc.get("object"), dict)
        and doc["object"].get("type") == "Create"
    }
    for i, doc in enumerate(documents):
        obj = doc.get("object")
        if doc.get("type") != "Announce" or not isinstance(obj, str) or obj not in wrapped:
            continue
        j = wrapped.pop(obj)
        if documents[j].get("actor") == doc.get("actor"):
            forms[i], forms[j] = PLAIN, WRAPPED
    return forms


def wanted(forms: Sequence[str | None], software: str | None) -> list[bool]:
    """Which of the activities (by ``forms_of``) a server running ``software`` (None: unknown) gets."""
    skip = WRAPPED if software in PLAIN_ONLY else PLAIN if software in WRAPPED_ONLY else None
    return [form is None or form != skip for form in forms]


def _object_id(obj: Any) -> str | None:
    if isinstance(obj, dict):
        obj = obj.get("id")
    return obj if isinstance(obj, str) else None
