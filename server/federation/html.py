"""Sanitising remote HTML with nh3 (ammonia): the only way remote markup enters a page."""

from __future__ import annotations

import html as html_lib
import re

import nh3

# What Mastodon, Lemmy (from Markdown), Mbin, Misskey and Friendica emit for posts,
# minus anything that runs, styles, embeds or loads: no script, style, iframe, img,
# form, no event handlers or style attributes.
ALLOWED_TAGS = {
    "p", "br", "a", "span", "strong", "b", "em", "i", "u", "s", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "sup", "sub", "hr",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "span": set(), "code": set()}
# Microformat classes Mastodon uses to render mentions and hashtags; nothing else.
ALLOWED_CLASSES = {
    "a": {"mention", "hashtag", "u-url", "status-link", "unhandled-link"},
    "span": {"h-card", "invisible", "ellipsis"},
}
URL_SCHEMES = {"http", "https", "mailto"}
MAX_HTML = 100_000


def sanitize_html(html: str | None) -> str:
    """Remote HTML made safe to show: allowed tags only, safe links marked nofollow."""
    if not html:
        return ""
    return nh3.clean(
        html[:MAX_HTML],
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )


def plain_text(text: str | None, limit: int = 500) -> str | None:
    """A remote plain-text field (title, content warning) with any markup removed."""
    if not text:
        return None
    # Strip tags, then undo the entity escaping nh3 applies: templates escape on output.
    return html_lib.unescape(nh3.clean(text[: limit * 2], tags=set())).strip()[:limit] or None


_BLOCK_END = re.compile(r"(?i)<\s*(?:br\s*/?|/p|/li|/h[1-6]|/blockquote|/pre)\s*>")


def html_text(html: str | None, limit: int = 2000) -> str:
    """Remote HTML as one line of plain text: tags removed, entities undone, whitespace collapsed.

    Block ends (paragraphs, line breaks, list items) become spaces first, so words of two
    paragraphs do not run together. For reading commands and quoting excerpts; anything
    shown is escaped again on output.
    """
    if not html:
        return ""
    spaced = _BLOCK_END.sub(" ", html[: limit * 4])
    return " ".join(html_lib.unescape(nh3.clean(spaced, tags=set())).split())[:limit]


def excerpt(html: str | None, limit: int = 200) -> str:
    """A short plain-text excerpt of remote HTML, cut at a word with an ellipsis when longer than ``limit``."""
    text = html_text(html, limit * 2)
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,.;:") + "…"
