"""Crowd control's rules, pure: when a group's traffic is an anomaly, and what crowd control holds.

Facts in (counts over the last ten minutes, where the author stands), decisions out; the
counts and the switch are stored by ``moderation/crowd.py``. Hand-written: a few
comparisons of policy, not a problem a library solves.

The defaults are measured against a replayed ordinary busy day (``tests/fakes/ordinary_day.py``,
the README's "Crowd control"): none of them trips on it, and a brigade of 50 new members
trips the first within its first 21 posts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.moderation.guards import Decision

WINDOW = timedelta(minutes=10)  # "in any 10 minutes": the anomaly window and slow mode's
NEW_MEMBER_AGE = timedelta(hours=48)  # a member who joined more recently is new
DEFAULT_HOURS = 24  # how long crowd control stays on unless told otherwise
MAX_HOURS = 24 * 30
SLOW_MODE_POSTS = 1  # posts per member per thread per WINDOW while crowd control is on
CANDIDATE_BANS = 3  # members of one server banned in a day: offered to the admins as a block
CANDIDATE_PERIOD = timedelta(days=1)


@dataclass(frozen=True)
class Thresholds:
    """When a group's last ten minutes are an anomaly (per group; these are the defaults)."""

    new_member_posts: int = 20  # posts by members who joined in the last 48 hours: more trips
    server_share_percent: int = 50  # one remote server's share of the group's posts: more trips ...
    server_min_posts: int = 25  # ... once that server sent at least this many (10 trips on ordinary days: README)
    follows: int = 50  # new follows: more trips


LIMITS = {
    "new_member_posts": (1, 100_000),
    "server_share_percent": (1, 100),
    "server_min_posts": (1, 100_000),
    "follows": (1, 100_000),
}


def threshold_error(name: str, value: object) -> str | None:
    """Why ``value`` is not a valid setting for threshold ``name``, or None when it is."""
    low, high = LIMITS[name]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        return f"{name.replace('_', '-')} must be a whole number from {low} to {high}"
    return None


@dataclass(frozen=True)
class Window:
    """What a group saw in the last ten minutes, this event included."""

    posts: int = 0  # every post the group took in (or refused by a guard)
    new_member_posts: int = 0
    server_posts: int = 0  # posts from the current post's server
    follows: int = 0


def anomaly(window: Window, thresholds: Thresholds, server: str = "") -> str | None:
    """Why this window is an anomaly (the alarm's reason), or None for ordinary traffic."""
    if window.new_member_posts > thresholds.new_member_posts:
        return (
            f"{window.new_member_posts} posts in 10 minutes from members who joined in the last 48 hours"
            f" (more than {thresholds.new_member_posts})"
        )
    if (
        window.server_posts >= thresholds.server_min_posts
        and window.server_posts * 100 > window.posts * thresholds.server_share_percent
    ):
        return (
            f"{window.server_posts} of the last 10 minutes' {window.posts} posts came from {server or 'one server'}"
            f" (more than {thresholds.server_share_percent}%)"
        )
    if window.follows > thresholds.follows:
        return f"{window.follows} new follows in 10 minutes (more than {thresholds.follows})"
    return None


def is_on(until: datetime | None, now: datetime) -> bool:
    """Is crowd control on at ``now``? It turns itself off when ``until`` passes: no timer needed."""
    return until is not None and until > now


def is_new(member_since: datetime | None, *, moderator: bool, now: datetime) -> bool:
    """Does the author count as new: not a moderator, and no membership or one younger than 48 hours."""
    if moderator:
        return False
    return member_since is None or now - member_since < NEW_MEMBER_AGE


@dataclass(frozen=True)
class Author:
    """Where a post's author stands, as crowd control asks it."""

    new: bool  # see ``is_new``
    server_known: bool  # their server has a post accepted (and shown) in the group
    thread_posts: int  # their posts in this thread in the last ten minutes (0 for a new thread)


def screen(author: Author) -> Decision | None:
    """What crowd control does with a non-moderator's post while it is on: hold it (with why), or None."""
    if author.new:
        return Decision("hold", "crowd control: the author joined in the last 48 hours")
    if not author.server_known:
        return Decision("hold", "crowd control: the first post from this server in the group")
    if author.thread_posts >= SLOW_MODE_POSTS:
        return Decision("hold", "crowd control's slow mode: one post per member per thread every 10 minutes")
    return None


@dataclass(frozen=True)
class Candidate:
    """A server offered to the admins as a domain block: its members banned this often in a day."""

    domain: str
    bans: int
    members: int


def block_candidates(bans: Iterable[tuple[int, str, str]], *, minimum: int = CANDIDATE_BANS) -> list[Candidate]:
    """Servers with at least ``minimum`` bans among ``(group id, banned actor, its domain)``, most first.

    The same member banned twice from one group counts once; banned from two groups, twice.
    """
    distinct = set(bans)
    per_domain = Counter(domain for _, _, domain in distinct)
    members: dict[str, set[str]] = {}
    for _, actor, domain in distinct:
        members.setdefault(domain, set()).add(actor)
    found = [Candidate(d, n, len(members[d])) for d, n in per_domain.items() if d and n >= minimum]
    return sorted(found, key=lambda c: (-c.bans, c.domain))
