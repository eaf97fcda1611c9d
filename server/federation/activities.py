"""Pure builders for the activities Kith sends. Each returns a ready JSON dict."""

from __future__ import annotations

import uuid
from typing import Any

from server.federation.vocab import AS_CONTEXT


def new_activity_id(base: str) -> str:
    """A fresh, dereferenceable activity id under ``base``/activities/."""
    return f"{base}/activities/{uuid.uuid4()}"


def embedded_follow(follow: dict[str, Any]) -> dict[str, Any]:
    """The Follow as Accept/Reject embed it: id, type, actor, object (Mastodon matches on these)."""
    return {k: follow[k] for k in ("id", "type", "actor", "object") if k in follow}


def accept_follow(base: str, group_id: str, follow: dict[str, Any]) -> dict[str, Any]:
    """``Accept`` of a Follow, the Follow embedded with its id."""
    return _reply("Accept", base, group_id, follow)


def reject_follow(base: str, group_id: str, follow: dict[str, Any]) -> dict[str, Any]:
    """``Reject`` of a Follow, the Follow embedded with its id."""
    return _reply("Reject", base, group_id, follow)


def _reply(kind: str, base: str, group_id: str, follow: dict[str, Any]) -> dict[str, Any]:
    follower = follow["actor"] if isinstance(follow["actor"], str) else follow["actor"]["id"]
    return {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": kind,
        "actor": group_id,
        "object": embedded_follow(follow),
        "to": [follower],
    }
