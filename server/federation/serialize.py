"""Our actors and collections as ActivityStreams JSON (pure: rows in, dicts out)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from server.federation.vocab import CONTEXT, iso
from server.links import Links


def text_to_html(text: str, *, links: bool = False) -> str:
    """Plain text as safe HTML paragraphs (blank lines part paragraphs, newlines break lines).

    ``links``: http(s) URLs become links, as Mastodon's formatter makes them.
    """
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    line = _linkified if links else html.escape
    return "".join("<p>" + line(p).replace("\n", "<br>") + "</p>" for p in paragraphs)


# Hand-written: no library in Kith's dependencies linkifies plain text (nh3 only cleans
# HTML; bleach, which had a linkifier, is deprecated). A URL runs from its scheme to the
# next blank, quote or angle bracket; punctuation that ends a sentence is left outside,
# and so is a closing bracket the URL did not open ("(see https://x.example/a)").
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?*"


def _url_end(url: str) -> str:
    while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
        url = url[:-1]
    return url


def _linkified(text: str) -> str:
    """``text`` escaped, its http(s) URLs as links (nofollow: people, not us, wrote them)."""
    out, at = [], 0
    for match in _URL.finditer(text):
        url = _url_end(match.group())
        if url.endswith("://"):  # nothing left of it but the scheme
            continue
        out.append(html.escape(text[at : match.start()]))
        shown = html.escape(url)
        out.append(f'<a href="{shown}" rel="nofollow noopener noreferrer">{shown}</a>')
        at = match.start() + len(url)
    out.append(html.escape(text[at:]))
    return "".join(out)


def rules_html(rules: str) -> str:
    """A group's rules (one per line) as an HTML list, for the actor summary remote servers show."""
    items = [r.strip() for r in rules.splitlines() if r.strip()]
    if not items:
        return ""
    return "<p>Rules:</p><ol>" + "".join(f"<li>{html.escape(r)}</li>" for r in items) + "</ol>"


@dataclass(frozen=True, slots=True)
class ActorImage:
    """An actor's avatar (``icon``) or header (``image``) as the document names it."""

    media_type: str
    url: str

    def as_json(self) -> dict[str, str]:
        return {"type": "Image", "mediaType": self.media_type, "url": self.url}


class ActorProfile(Protocol):
    """What an actor document is made from (a local group, person or the instance actor)."""

    kind: str  # group | person | application
    name: str
    title: str
    summary: str
    rules: str
    objectives: str
    public_key_pem: str
    approval: str
    posting: str
    discoverable: bool
    created_at: datetime


# Mastodon shows at most four profile fields by default, and cuts a field's name at 255 characters.
_FIELD_VALUE_MAX = 255
_POSTING = {"members": "Members", "anyone": "Anyone who mentions the group", "moderators": "Moderators only"}


def _first_paragraph(text: str) -> str:
    first = next((p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()), "")
    return first if len(first) <= _FIELD_VALUE_MAX else first[: _FIELD_VALUE_MAX - 1].rstrip() + "…"


def profile_fields(actor: ActorProfile, actor_id: str) -> list[dict[str, str]]:
    """A group's profile fields (``PropertyValue``), which Mastodon shows on the group's profile.

    Purpose (its objectives, else the first paragraph of its summary), its rules as a link to
    the group page where they are listed, who may post and how members join.
    """
    fields: list[tuple[str, str]] = []
    purpose = _first_paragraph(actor.objectives or actor.summary or "")
    if purpose:
        fields.append(("Purpose", html.escape(purpose)))
    rules = [r for r in (actor.rules or "").splitlines() if r.strip()]
    if rules:
        count = f"{len(rules)} rule" + ("" if len(rules) == 1 else "s")
        fields.append(("Rules", f'<a href="{html.escape(actor_id)}#rules" rel="nofollow noopener">{count}</a>'))
    fields.append(("Posting", _POSTING.get(actor.posting, actor.posting)))
    fields.append(("Joining", "Approved by moderators" if actor.approval == "manual" else "Open to anyone"))
    return [{"type": "PropertyValue", "name": name, "value": value} for name, value in fields]


def actor_document(
    actor: ActorProfile,
    links: Links,
    *,
    host: str,
    icon: ActorImage | None = None,
    image: ActorImage | None = None,
) -> dict[str, Any]:
    """The actor document of a local group, person or the instance actor, with its avatar
    (``icon``) and header (``image``) when it has them (Mastodon shows both on the profile)."""
    kind, name = actor.kind, actor.name
    actor_id = links.actor(kind, name)
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "id": actor_id,
        "type": {"group": "Group", "person": "Person", "application": "Application"}[kind],
        "preferredUsername": host if kind == "application" else name,
        "name": actor.title or (host if kind == "application" else name),
        "summary": text_to_html(actor.summary or "") + rules_html(actor.rules or ""),
        "url": actor_id if kind != "application" else links.base + "/about",
        "inbox": f"{actor_id}/inbox",
        "outbox": f"{actor_id}/outbox",
        "endpoints": {"sharedInbox": links.shared_inbox},
        "publicKey": {"id": f"{actor_id}#main-key", "owner": actor_id, "publicKeyPem": actor.public_key_pem},
        "manuallyApprovesFollowers": kind == "application" or actor.approval == "manual",
        "discoverable": bool(actor.discoverable) and kind == "group",
        "published": iso(actor.created_at),
    }
    if kind != "application":
        doc["followers"] = f"{actor_id}/followers"
        doc["following"] = f"{actor_id}/following"
    if kind == "group":
        moderators = f"{actor_id}/moderators"
        doc.update(
            featured=f"{actor_id}/featured",
            attributedTo=moderators,
            moderators=moderators,
            postingRestrictedToMods=actor.posting == "moderators",
            attachment=profile_fields(actor, actor_id),
        )
    if icon is not None:
        doc["icon"] = icon.as_json()
    if image is not None:
        doc["image"] = image.as_json()
    return doc


def ordered_collection(collection_id: str, items: list[Any] | None, total: int) -> dict[str, Any]:
    """An ``OrderedCollection``; ``items=None`` publishes only the count (private members)."""
    doc: dict[str, Any] = {
        "@context": CONTEXT[0],
        "id": collection_id,
        "type": "OrderedCollection",
        "totalItems": total,
    }
    if items is not None:
        doc["orderedItems"] = items
    return doc
