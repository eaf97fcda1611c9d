"""Mastodon's entities as Kith builds them: Account, Admin::Account and a minimal Status.

One place builds an account's JSON, for the token's own account
(``/api/v1/accounts/verify_credentials``) and for the accounts and statuses a report
points at (``/api/v1/admin/reports``), so Mastodon.py and moderation tools read them
unchanged.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from server.federation.actors import RemoteActor
from server.federation.html import plain_text, sanitize_html
from server.federation.serialize import text_to_html
from server.groups.posts import Post
from server.links import Links
from server.local_actors import LocalActor

# Local accounts take their actor's id (below 2**31, as ids are 32-bit); remote accounts are
# numbered from 2**31 up, so an account id names one account whichever side it lives on.
REMOTE_ID_BASE = 2**31
UNKNOWN_ID_BASE = 2**53  # accounts we hold no row for: a stable number from the URI's digest


def mastodon_time(dt: datetime) -> str:
    """``2024-01-31T12:00:00.123Z``: Mastodon's timestamps, with milliseconds."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def role_json(is_admin: bool) -> dict[str, Any]:
    """Mastodon's built-in roles: "Admin" holds the administrator permission bit (1), everyone
    else the default role (id -99); clients read this to show admin tools."""
    if is_admin:
        return {"id": "3", "name": "Admin", "color": "", "permissions": "1", "highlighted": True}
    return {"id": "-99", "name": "", "color": "", "permissions": "65536", "highlighted": False}


@dataclass(frozen=True)
class Profile:
    """What an Account and an Admin::Account are built from, local or remote."""

    id: str
    username: str
    domain: str | None  # None for a local account, as Mastodon has it
    display_name: str
    note_html: str
    url: str
    uri: str
    avatar: str
    created_at: datetime
    bot: bool = False
    group: bool = False
    locked: bool = False
    suspended: bool = False
    is_admin: bool | None = None  # None for a remote account (no role)
    discoverable: bool | None = None  # None where Kith does not know
    private: bool = False  # hides its collections and asks not to be indexed (local people)


def _midnight(dt: datetime) -> datetime:
    # Mastodon shows an account's creation as a date only (midnight UTC).
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


def remote_profile(row: RemoteActor) -> Profile:
    """A remote actor from the cache; the display fields come from the stored document."""
    try:
        doc = json.loads(row.raw)
    except ValueError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    icon = doc.get("icon")
    avatar = icon.get("url") if isinstance(icon, dict) else None
    url = doc.get("url")
    username = row.preferred_username or row.uri.rstrip("/").rsplit("/", 1)[-1]
    return Profile(
        id=str(REMOTE_ID_BASE + row.id),
        username=username,
        domain=row.domain,
        display_name=plain_text(row.name) or username,
        note_html=sanitize_html(doc.get("summary") if isinstance(doc.get("summary"), str) else None),
        url=url if isinstance(url, str) and url.startswith(("https://", "http://")) else row.uri,
        uri=row.uri,
        avatar=avatar if isinstance(avatar, str) and avatar.startswith(("https://", "http://")) else "",
        created_at=_midnight(row.fetched_at),
        bot=row.type in ("Service", "Application"),
        group=row.type == "Group",
        locked=doc.get("manuallyApprovesFollowers") is True,
        suspended=row.suspended_at is not None,
    )


def unknown_profile(uri: str, seen_at: datetime) -> Profile:
    """An account we hold no row for (forgotten since): what its URI tells."""
    parts = urlsplit(uri)
    digest = int(hashlib.sha256(uri.encode()).hexdigest()[:12], 16)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.hostname or "unknown"
    return Profile(
        id=str(UNKNOWN_ID_BASE + digest),
        username=name,
        domain=parts.hostname,
        display_name=name,
        note_html="",
        url=uri,
        uri=uri,
        avatar="",
        created_at=_midnight(seen_at),
    )


def local_profile(row: LocalActor, links: Links, *, is_admin: bool | None = None, avatar: str = "") -> Profile:
    """A local person (with ``is_admin``, from its account) or group (with its ``avatar``'s URL, if any)."""
    kind = "group" if row.kind == "group" else "person"
    url = links.actor(kind, row.name)
    return Profile(
        id=str(row.id),
        username=row.name,
        domain=None,
        display_name=row.title or row.name,
        note_html=text_to_html(row.summary or ""),  # ours: plain text, escaped here
        url=url,
        uri=url,
        avatar=avatar,
        created_at=_midnight(row.created_at),
        group=kind == "group",
        locked=row.approval == "manual",
        is_admin=bool(is_admin) if kind == "person" else None,
        discoverable=bool(row.discoverable),
        private=kind == "person",
    )


def account_json(p: Profile) -> dict[str, Any]:
    """Mastodon's Account entity (counts are not kept for accounts, so they are zero)."""
    return {
        "id": p.id,
        "username": p.username,
        "acct": p.username if p.domain is None else f"{p.username}@{p.domain}",
        "display_name": p.display_name,
        "locked": p.locked,
        "bot": p.bot,
        "discoverable": p.discoverable,
        "indexable": False,
        "group": p.group,
        "created_at": mastodon_time(p.created_at),
        "note": p.note_html,
        "url": p.url,
        "uri": p.uri,
        "avatar": p.avatar,
        "avatar_static": p.avatar,
        "header": "",
        "header_static": "",
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": 0,
        "last_status_at": None,
        "hide_collections": True if p.private else None,
        "noindex": True if p.private else None,
        "emojis": [],
        "roles": [],
        "fields": [],
    }


def admin_account_json(p: Profile | None) -> dict[str, Any] | None:
    """Mastodon's Admin::Account. Kith keeps no e-mail addresses or IPs: those are null."""
    if p is None:
        return None
    local = p.domain is None and not p.group
    return {
        "id": p.id,
        "username": p.username,
        "domain": p.domain,
        "created_at": mastodon_time(p.created_at),
        "email": None,
        "ip": None,
        "ips": [],
        "locale": None,
        "invite_request": None,
        "role": role_json(bool(p.is_admin)) if local else None,
        "confirmed": local,
        "approved": local,
        "disabled": False,
        "silenced": False,
        "sensitized": False,
        "suspended": p.suspended,
        "account": account_json(p),
    }


def status_json(post: Post, author: Profile) -> dict[str, Any]:
    """A minimal Status: what a moderator needs to see what was reported."""
    content = post.content_html or ""
    if post.name and post.type in ("Page", "Article"):
        # A Lemmy post's title is its name; Mastodon shows it above the content too.
        content = f"<p><strong>{html.escape(post.name)}</strong></p>" + content
    return {
        "id": str(post.id),
        "uri": post.uri,
        "url": post.url or post.uri,
        "created_at": mastodon_time(post.published),
        "edited_at": mastodon_time(post.updated_at) if post.updated_at else None,
        "account": account_json(author),
        "content": content,
        "visibility": "public",
        "sensitive": bool(post.sensitive),
        "spoiler_text": post.summary or "",
        "media_attachments": [],
        "application": None,
        "mentions": [],
        "tags": [],
        "emojis": [],
        "reblogs_count": 0,
        "favourites_count": post.likes,
        "replies_count": post.replies,
        "in_reply_to_id": str(post.parent_id) if post.parent_id is not None else None,
        "in_reply_to_account_id": None,
        "reblog": None,
        "poll": None,
        "card": None,
        "language": None,
        "text": None,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "pinned": post.pinned_at is not None,
    }
