"""Automatic guards of a group: pure screening of a post against the group's settings.

Facts in (counts the caller looked up), decision out: ``accept``, ``hold`` for a
moderator, or ``reject``. Hand-written because it is a few lines of policy, not a
problem a library solves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.federation.objects import PostEnvelope

GROUP_PATH = re.compile(r"/(c|m|g|groups|communities|magazines)/[^/]+/?$")


@dataclass(frozen=True)
class Guards:
    """A group's guard settings; zero or empty means the guard is off."""

    hold_first_posts: int = 0
    keywords: tuple[str, ...] = ()
    link_domains: tuple[str, ...] = ()
    filter_action: str = "hold"  # what a keyword or link match does: hold | reject
    member_posts_per_hour: int = 0
    instance_posts_per_hour: int = 0
    max_group_mentions: int = 0

    @property
    def counts_matter(self) -> bool:
        """Does screening read the author's recent post counts (so they are worth a query)?"""
        return bool(self.member_posts_per_hour or self.instance_posts_per_hour or self.hold_first_posts)

    @property
    def known_groups_matter(self) -> bool:
        """Does screening ask which mentioned actors are known groups?"""
        return bool(self.max_group_mentions)


@dataclass(frozen=True)
class Decision:
    action: str  # accept | hold | reject
    reason: str = ""


ACCEPT = Decision("accept")
LINK_RE = re.compile(r"""href=["']([^"']+)["']""", re.IGNORECASE)
TAG_RE = re.compile(r"<[^>]+>")


def looks_like_group(uri: str, known_groups: frozenset[str]) -> bool:
    """A mentioned actor that is a group: known as one, or shaped like Lemmy/Mbin/Kith group URLs."""
    return uri in known_groups or bool(GROUP_PATH.search(urlsplit(uri).path))


def screen(
    guards: Guards,
    env: PostEnvelope,
    *,
    member_posts_last_hour: int,
    instance_posts_last_hour: int,
    member_accepted_posts: int,
    known_groups: frozenset[str] = frozenset(),
) -> Decision:
    """Decide what the group does with a post by a non-moderator."""
    if guards.max_group_mentions:
        mentioned = {m for m in (*env.mentions, *env.audience) if looks_like_group(m, known_groups)}
        if len(mentioned) > guards.max_group_mentions:
            return Decision("reject", f"mentions {len(mentioned)} groups (at most {guards.max_group_mentions})")
    if guards.member_posts_per_hour and member_posts_last_hour >= guards.member_posts_per_hour:
        return Decision("reject", "too many posts from this member in the last hour")
    if guards.instance_posts_per_hour and instance_posts_last_hour >= guards.instance_posts_per_hour:
        return Decision("reject", "too many posts from this server in the last hour")
    text = " ".join(filter(None, (env.name, env.summary, TAG_RE.sub(" ", env.content_html)))).lower()
    for word in guards.keywords:
        # A whole word: no word character just before or after. Not \b, which needs a word
        # character inside the keyword's edge and so never matched one ending in "+" or "!".
        if word and re.search(r"(?<!\w)" + re.escape(word.lower()) + r"(?!\w)", text):
            return Decision(guards.filter_action, f"contains a filtered word ({word})")
    if guards.link_domains:
        for href in LINK_RE.findall(env.content_html):
            host = (urlsplit(href).hostname or "").lower()
            for domain in guards.link_domains:
                if host == domain or host.endswith("." + domain):
                    return Decision(guards.filter_action, f"links to a filtered domain ({domain})")
    if guards.hold_first_posts and member_accepted_posts < guards.hold_first_posts:
        return Decision("hold", "a new member's first posts wait for a moderator")
    return ACCEPT
