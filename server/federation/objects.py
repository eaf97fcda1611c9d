"""What the protocol's objects look like: posts as typed envelopes, and the same-origin rule.

Pure functions over JSON: the inbox, the groups and the moderation rules all ask here
what a Note or a Page is, and whether two URLs share an origin (trust by origin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from server.federation.html import plain_text, sanitize_html
from server.federation.urls import UnsafeUrl, host_of, origin_of
from server.federation.vocab import as_list, id_of, ids_of, is_public

POST_TYPES = frozenset({"Note", "Page", "Article", "Question"})

MAX_URI = 2048  # the width of the URI columns a post is stored in


class ParseError(ValueError):
    """An object we cannot use; the message says why."""


def host_or_none(url: str | None) -> str | None:
    """The URL's host (as ``urls.host_of``), or None when it is missing, malformed or not a string.

    The one spelling of "the host, unless the URL is unusable": callers that refuse an
    unusable URL treat None as refused.
    """
    if not url or not isinstance(url, str):
        return None
    try:
        return host_of(url)
    except UnsafeUrl:
        return None


def refused(url: str | None, is_blocked: Callable[[str], bool]) -> bool:
    """True when ``url`` names no usable host, or its host is one ``is_blocked`` refuses.

    What every door asks before it lets a URL through: the inbox of a sender, a member
    inbox in a fan-out, a report's destination.
    """
    host = host_or_none(url)
    return host is None or is_blocked(host)


def origin_or_none(url: str | None) -> tuple[str, str] | None:
    """The URL's (scheme, authority), or None when it is missing or malformed."""
    if not url or not isinstance(url, str):
        return None
    try:
        return origin_of(url)
    except UnsafeUrl:
        return None


def same_origin(*urls: str | None) -> bool:
    """True when every URL is present and all share scheme, host and port (trust by origin)."""
    prefix = _shared_plain_prefix(urls)
    if prefix is not None:
        # The URLs differ only after the same "scheme://authority/", so they have one
        # origin, and parse exactly when that prefix does (cached: actors repeat).
        return origin_or_none(prefix) is not None
    return _same_origin_parsed(urls)


def _same_origin_parsed(urls: tuple[str | None, ...]) -> bool:
    """``same_origin`` by parsing every URL in full: the rule itself, and the slow path."""
    origins = {origin_or_none(u) for u in urls}
    return len(origins) == 1 and None not in origins


def _shared_plain_prefix(urls: tuple[str | None, ...]) -> str | None:
    """The ``http(s)://authority/`` every URL starts with, when that alone settles their origin.

    An activity id is new on every request, so parsing it in full (httpx.URL) would miss
    every cache. The shortcut holds only where httpx's parser provably reads the same
    scheme and authority from the prefix as from the whole URL and cannot fail on the
    rest: http(s), the authority ended by "/" (not "?" or "#"), and a short URL of
    printable characters (httpx refuses control characters and over-long URLs, and
    cannot encode lone surrogates). Anything else returns None and is parsed in full.
    """
    prefix: str | None = None
    for url in urls:
        if not isinstance(url, str) or len(url) > 2048 or not url.isprintable():
            return None
        if url.startswith("https://"):
            start = 8
        elif url.startswith("http://"):
            start = 7
        else:
            return None
        slash = url.find("/", start)
        if slash < 0 or "?" in url[start:slash] or "#" in url[start:slash]:
            return None
        if prefix is None:
            prefix = url[: slash + 1]
        elif url[: slash + 1] != prefix:
            return None
    return prefix


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as aware UTC, or None when absent or unparsable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # "9999-12-31T23:59:59-23:59" is past the last datetime once in UTC
        return None


@dataclass(frozen=True)
class PostEnvelope:
    """The parts of a Note/Page/Article/Question a group needs, already sanitised."""

    uri: str
    type: str
    author: str
    in_reply_to: str | None
    audience: tuple[str, ...]  # every id in to, cc and audience
    mentions: tuple[str, ...]  # hrefs of Mention tags
    name: str | None
    summary: str | None
    content_html: str
    url: str | None
    sensitive: bool
    public: bool
    published: datetime | None
    updated: datetime | None


def author_of(obj: dict[str, Any]) -> str | None:
    """The object's author: its ``attributedTo``, or the first of them (PeerTube lists the channel too)."""
    attributed = obj.get("attributedTo")
    return id_of(attributed) or next(iter(ids_of(attributed)), None)


def parse_post(obj: Any) -> PostEnvelope:
    """Validate and sanitise a post object; ``ParseError`` when it is not one."""
    if not isinstance(obj, dict):
        raise ParseError("object is not embedded")
    # isinstance first: a type may be any JSON value, and a dict or list is unhashable.
    kind = next((t for t in as_list(obj.get("type")) if isinstance(t, str) and t in POST_TYPES), None)
    if kind is None:
        raise ParseError(f"type {obj.get('type')!r} is not a post")
    uri = obj.get("id")
    author = author_of(obj)
    if not isinstance(uri, str) or host_or_none(uri) is None:
        raise ParseError("post has no usable id")
    if not author or host_or_none(author) is None:
        raise ParseError("post has no author")
    in_reply_to = id_of(obj.get("inReplyTo"))
    if max(len(uri), len(author), len(in_reply_to or "")) > MAX_URI:
        raise ParseError(f"the post's id, author or inReplyTo is longer than {MAX_URI} characters")
    audience = tuple(ids_of(obj.get("to")) + ids_of(obj.get("cc")) + ids_of(obj.get("audience")))
    mentions = tuple(
        t["href"]
        for t in as_list(obj.get("tag"))
        if isinstance(t, dict) and t.get("type") == "Mention" and isinstance(t.get("href"), str)
    )
    content = obj.get("content")
    if not isinstance(content, str):
        content_map = obj.get("contentMap")
        content = next(iter(content_map.values()), "") if isinstance(content_map, dict) and content_map else ""
    url = obj.get("url")
    url = id_of(url[0] if isinstance(url, list) and url else url)
    return PostEnvelope(
        uri=uri,
        type=kind,
        author=author,
        in_reply_to=in_reply_to,
        audience=audience,
        mentions=mentions,
        name=plain_text(obj.get("name") if isinstance(obj.get("name"), str) else None, 500),
        summary=plain_text(obj.get("summary") if isinstance(obj.get("summary"), str) else None, 500),
        content_html=sanitize_html(content if isinstance(content, str) else ""),
        url=url if url and url.startswith(("https://", "http://")) and len(url) <= MAX_URI else None,
        sensitive=obj.get("sensitive") is True,
        public=is_public(obj),
        published=parse_time(obj.get("published")),
        updated=parse_time(obj.get("updated")),
    )


def poll_options(obj: dict[str, Any]) -> list[tuple[str, int]]:
    """A Question's options with their vote counts (``oneOf`` or ``anyOf``)."""
    options = []
    for option in as_list(obj.get("oneOf")) + as_list(obj.get("anyOf")):
        if not isinstance(option, dict) or not isinstance(option.get("name"), str):
            continue
        replies = option.get("replies")
        total = replies.get("totalItems") if isinstance(replies, dict) else 0
        options.append((plain_text(option["name"], 200) or "", total if isinstance(total, int) and total >= 0 else 0))
    return options
