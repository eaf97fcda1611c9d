"""Pure builders for the activities Kith sends. Each returns a ready JSON dict."""

from __future__ import annotations

import uuid
from typing import Any

from server.federation.vocab import AS_CONTEXT, AS_PUBLIC


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


def moderation(
    base: str,
    *,
    kind: str,
    actor: str,
    obj: Any,
    group_uri: str,
    summary: str | None = None,
    target: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A moderation activity as Lemmy sends it (Delete, Lock, Add, Remove, Block, Undo ...).

    Public, cc the group, ``audience`` the group; ``summary`` carries the reason.
    """
    activity: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": kind,
        "actor": actor,
        "object": obj,
        "to": [AS_PUBLIC],
        "cc": [group_uri],
        "audience": group_uri,
    }
    if summary:
        activity["summary"] = summary
    if target:
        activity["target"] = target
    activity.update(extra)
    return activity


def undo(base: str, actor: str, activity: dict[str, Any], group_uri: str | None = None) -> dict[str, Any]:
    """``Undo`` of one of our activities, embedded."""
    body = {k: v for k, v in activity.items() if k != "@context"}
    out: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": "Undo",
        "actor": actor,
        "object": body,
        "to": [AS_PUBLIC],
    }
    if group_uri:
        out["cc"] = [group_uri]
        out["audience"] = group_uri
    return out


def flag(base: str, *, actor: str, objects: list[str], content: str, to: str | None = None) -> dict[str, Any]:
    """A report as Mastodon sends it: from the instance actor, so the reporter stays unnamed."""
    out: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": "Flag",
        "actor": actor,
        "object": objects,
        "content": content,
    }
    if to:
        out["to"] = [to]
    return out
