"""Pure builders for every activity Kith sends: one function per family, each a ready JSON dict.

The one place outbound activities take their shape: follows answered (Accept, Reject),
a post refused (Reject), the group's redistribution (Announce), moderation as Lemmy
sends it (Delete, Lock, Add, Remove, Block), withdrawals (Undo), reports (Flag), and the
Tombstone an id answers once what it carried is gone. ``tests/test_activities.py``
checks each against the shapes recorded from Lemmy and Mastodon.
"""

from __future__ import annotations

import html
import uuid
from datetime import datetime
from typing import Any

from server.federation.vocab import AS_CONTEXT, AS_PUBLIC, CONTEXT, ids_of, is_public, iso


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


def reject_post(base: str, group_id: str, create_id: str, author: str) -> dict[str, Any]:
    """``Reject`` of an author's Create the group did not take (only the author hears of it)."""
    return {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": "Reject",
        "actor": group_id,
        "object": create_id,
        "to": [author],
    }


def announce(base: str, group_id: str, obj: dict[str, Any] | str, *, published: datetime) -> dict[str, Any]:
    """The group's ``Announce`` of an activity (embedded, unchanged) or of an object (by id), to its members.

    FEP-1b12: public, to the followers collection, ``audience`` the group.
    """
    return {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": "Announce",
        "actor": group_id,
        "object": obj,
        "to": [AS_PUBLIC],
        "cc": [f"{group_id}/followers"],
        "audience": group_id,
        "published": iso(published),
    }


def tombstone(uri: str, former_type: str, deleted: datetime) -> dict[str, Any]:
    """What an id of ours answers (with 410) once what it carried was deleted."""
    return {"@context": AS_CONTEXT, "id": uri, "type": "Tombstone", "formerType": former_type, "deleted": iso(deleted)}


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


def update_actor(base: str, actor_doc: dict[str, Any], *, published: datetime) -> dict[str, Any]:
    """``Update`` of one of our actors with its whole document, as Mastodon sends a profile change.

    Public and to its followers: servers that follow the actor refresh the profile they show.
    """
    actor_id = actor_doc["id"]
    body = {k: v for k, v in actor_doc.items() if k != "@context"}
    return {
        "@context": actor_doc.get("@context", AS_CONTEXT),
        "id": new_activity_id(base),
        "type": "Update",
        "actor": actor_id,
        "object": body,
        "to": [AS_PUBLIC],
        "cc": [actor_doc.get("followers", f"{actor_id}/followers")],
        "published": iso(published),
    }


POST_TYPES = frozenset({"Note", "Article", "Page", "Question"})
# What ``public_post`` sets itself: extra fields may add to an object, never readdress or reattribute it.
_OWN_POST_FIELDS = frozenset({"@context", "id", "type", "attributedTo", "to", "cc", "audience", "published", "content"})


def public_post(
    base: str,
    *,
    actor: str,
    kind: str,
    content_html: str,
    published: datetime,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``Create`` of a public post by ``actor`` itself (a group speaking), the object embedded.

    Addressed as Mastodon addresses a public status, to Public and cc the actor's
    followers, which puts it in every follower's home timeline; ``audience`` the actor,
    FEP-1b12's name for the group a post belongs to. ``extra`` adds object fields
    (a poll's ``oneOf``/``anyOf``, ``endTime``, ``votersCount``; a ``url``).
    """
    if kind not in POST_TYPES:
        raise ValueError(f"{kind!r} is not a post type")
    clash = _OWN_POST_FIELDS & set(extra or {})
    if clash:
        raise ValueError(f"public_post sets {sorted(clash)} itself")
    to, cc = [AS_PUBLIC], [f"{actor}/followers"]
    obj: dict[str, Any] = {
        "id": new_activity_id(base),
        "type": kind,
        "attributedTo": actor,
        "content": content_html,
        "to": to,
        "cc": cc,
        "audience": actor,
        "published": iso(published),
    }
    if name:
        obj["name"] = name
    obj.update(extra or {})
    return {
        "@context": CONTEXT,
        "id": new_activity_id(base),
        "type": "Create",
        "actor": actor,
        "object": obj,
        "to": to,
        "cc": cc,
        "audience": actor,
        "published": iso(published),
    }


def update_post(base: str, *, actor: str, obj: dict[str, Any], published: datetime) -> dict[str, Any]:
    """``Update`` of one of ``actor``'s own public posts (a poll's new counts), addressed as the post is.

    As Mastodon sends a poll's counts: the object whole, without a new ``updated``, which a
    receiving Mastodon takes as a refresh of the poll rather than an edit of the status.
    """
    body = {k: v for k, v in obj.items() if k != "@context"}
    return {
        "@context": CONTEXT,
        "id": new_activity_id(base),
        "type": "Update",
        "actor": actor,
        "object": body,
        "to": body.get("to", [AS_PUBLIC]),
        "cc": body.get("cc", [f"{actor}/followers"]),
        "published": iso(published),
    }


def delete_own(base: str, *, actor: str, obj: str, former_type: str, deleted: datetime) -> dict[str, Any]:
    """``Delete`` of one of ``actor``'s own posts, as Mastodon sends one: a Tombstone, to Public and followers."""
    return {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": "Delete",
        "actor": actor,
        "object": {"id": obj, "type": "Tombstone", "formerType": former_type, "deleted": iso(deleted)},
        "to": [AS_PUBLIC],
        "cc": [f"{actor}/followers"],
    }


def featured_add(base: str, *, actor: str, obj: str) -> dict[str, Any]:
    """``Add`` of one of ``actor``'s own posts to its featured collection, as Mastodon pins a status.

    Mastodon takes an ``Add`` whose target is the sender's own featured collection and
    pins the post on the sender's profile.
    """
    return {
        "@context": CONTEXT,
        "id": new_activity_id(base),
        "type": "Add",
        "actor": actor,
        "object": obj,
        "target": f"{actor}/featured",
        "to": [AS_PUBLIC],
        "cc": [f"{actor}/followers"],
    }


def direct_note(
    base: str, *, actor: str, to: str, to_handle: str, content_html: str, published: datetime
) -> dict[str, Any]:
    """A ``Create`` of a direct message from ``actor`` to ``to`` alone, as Mastodon sends one.

    Addressed only to ``to`` (no Public, no followers) and mentioning it, which is what
    makes Mastodon show it as a private mention; never announced, never listed.
    """
    note_id = new_activity_id(base)
    mention = (
        f'<p><span class="h-card"><a href="{html.escape(to)}" class="u-url mention">'
        f"@<span>{html.escape(to_handle.lstrip('@').split('@')[0])}</span></a></span></p>"
    )
    note = {
        "id": note_id,
        "type": "Note",
        "attributedTo": actor,
        "content": mention + content_html,
        "to": [to],
        "cc": [],
        "tag": [{"type": "Mention", "href": to, "name": to_handle}],
        "published": iso(published),
    }
    return {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": "Create",
        "actor": actor,
        "object": note,
        "to": [to],
        "cc": [],
        "published": iso(published),
    }


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


def addressees(activity: dict[str, Any]) -> set[str]:
    """Every actor an activity is addressed to (``to``, ``cc``, ``bto``, ``bcc``)."""
    return {a for key in ("to", "cc", "bto", "bcc") for a in ids_of(activity.get(key))}


def disclosable(activity: dict[str, Any]) -> bool:
    """May anyone who holds its id read this activity of ours?

    Not a report (it would name what was reported, and to whom), nor a direct message (a
    Create of something not public, or that something itself): those are for their
    addressees alone. Everything else
    a group sends (Accept, Reject, Announce, Delete, Undo ...) dereferences at its id.
    """
    if activity.get("type") == "Flag":
        return False
    if activity.get("type") in POST_TYPES and not is_public(activity):
        return False  # a direct message's object, stored on its own so that its id dereferences
    inner = activity.get("object")
    return not (activity.get("type") == "Create" and isinstance(inner, dict) and not is_public(inner))
