"""An ordinary busy day of a group, generated deterministically: what crowd control's defaults must not trip on.

The shape (fixed seed, so every run replays the same day):

- 320 members on 40 servers, sized by Zipf's law (the largest holds ~21% of the members, as
  a flagship server does; the smallest a handful each). 292 joined 3 to 400 days before, 12 in the two
  days before (so they count as new all day), and 16 follow during the day.
- A daily rhythm: posts per hour follow a smooth curve from ~15 at 07:00 UTC to ~105 at
  19:00 UTC; who posts is heavy-tailed (a few members write much of it), and new members
  post about twice as eagerly as the rest.
- Three bursts around popular threads (a book announcement, a heated argument, an AMA):
  100 to 150 replies within 40 to 60 minutes from dozens of members, on top of the rhythm.

About 1,800 posts (1,817 for the fixed seed) and 16 follows in all. ``events`` gives them in
time order; ``peaks`` measures the busiest ten minutes of each figure the anomaly alarm reads, in
pure Python, so the README's figures can be reproduced without a database.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

SEED = 15
SERVERS = 40
OLD_MEMBERS = 292
RECENT_MEMBERS = 12  # joined in the 48 hours before the day
JOINING = 16  # follow during the day
BURSTS = ((10 * 60 + 15, 45, 110), (19 * 60 + 5, 60, 150), (21 * 60 + 30, 40, 100))  # start minute, minutes, replies
WINDOW = timedelta(minutes=10)
NEW_AGE = timedelta(hours=48)


@dataclass(frozen=True)
class Member:
    uri: str
    domain: str
    joined: datetime
    weight: float  # how much they post, relative to the others


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str  # post | follow
    member: Member


def _servers() -> list[tuple[str, float]]:
    names = [f"server{i:02d}.example" for i in range(SERVERS)]
    return [(name, 1 / (rank + 1)) for rank, name in enumerate(names)]  # Zipf, s = 1


def members(start: datetime, rng: random.Random) -> list[Member]:
    """The group's members: old, recent (new all day) and the ones who join during the day."""
    servers = _servers()
    names, weights = zip(*servers, strict=True)
    out: list[Member] = []
    total = OLD_MEMBERS + RECENT_MEMBERS + JOINING
    for i in range(total):
        domain = rng.choices(names, weights)[0]
        if i < OLD_MEMBERS:
            joined = start - timedelta(days=rng.uniform(3, 400))
        elif i < OLD_MEMBERS + RECENT_MEMBERS:
            joined = start - timedelta(hours=rng.uniform(1, 47))
        else:
            joined = start + timedelta(minutes=rng.uniform(30, 23 * 60))
        eager = 2.0 if joined > start - NEW_AGE else 1.0
        weight = min(rng.lognormvariate(0, 1.1), 15) * eager  # heavy-tailed: a few write much of it
        out.append(Member(f"https://{domain}/users/m{i}", domain, joined, weight))
    return out


def _hourly_rate(hour: float) -> float:
    """Posts per hour at ``hour`` (UTC): ~15 at 07:00, ~105 at 19:00."""
    return 60 + 45 * math.cos((hour - 19) / 24 * 2 * math.pi)


def events(start: datetime, seed: int = SEED) -> list[Event]:
    """The day's posts and follows, in time order."""
    rng = random.Random(seed)
    people = members(start, rng)
    found: list[Event] = [Event(m.joined, "follow", m) for m in people if m.joined >= start]

    def poster(at: datetime) -> Member:
        present = [m for m in people if m.joined <= at]
        return rng.choices(present, [m.weight for m in present])[0]

    # The rhythm: a Poisson process whose rate follows the hour, minute by minute.
    for minute in range(24 * 60):
        at = start + timedelta(minutes=minute)
        for _ in range(_poisson(rng, _hourly_rate(minute / 60) / 60)):
            found.append(Event(at + timedelta(seconds=rng.uniform(0, 60)), "post", poster(at)))
    # The bursts: replies crowd in early and thin out (an exponential decay over the burst).
    for begin, length, replies in BURSTS:
        for _ in range(replies):
            offset = min(rng.expovariate(3 / length), length - 0.01)
            at = start + timedelta(minutes=begin + offset)
            found.append(Event(at, "post", poster(at)))
    return sorted(found, key=lambda e: (e.at, e.kind, e.member.uri))


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method: small rates only)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass(frozen=True)
class Peaks:
    """The busiest ten minutes of each figure the alarm reads, and the day's totals."""

    posts: int
    follows: int
    active_members: int  # members who posted or followed that day
    servers: int
    peak_posts: int
    peak_new_member_posts: int
    peak_follows: int
    peak_server_posts: int  # the most posts one server sent in ten minutes
    peak_server_share: float  # the largest share of ten minutes' posts one server had, once it sent >= 10
    busiest_hour_posts: int


def peaks(day: list[Event], *, min_server_posts: int = 10) -> Peaks:
    """Measure ``day`` with a sliding ten-minute window ending at each event (as the alarm sees it)."""
    recent: deque[Event] = deque()
    follows: deque[datetime] = deque()
    peak = dict(posts=0, new=0, follows=0, server=0)
    share = 0.0
    hours: Counter[int] = Counter()
    for e in day:
        if e.kind == "follow":
            follows.append(e.at)
            while follows[0] <= e.at - WINDOW:
                follows.popleft()
            peak["follows"] = max(peak["follows"], len(follows))
            continue
        hours[e.at.hour] += 1
        recent.append(e)
        while recent[0].at <= e.at - WINDOW:
            recent.popleft()
        new = sum(1 for r in recent if r.at - r.member.joined < NEW_AGE)
        per_server = Counter(r.member.domain for r in recent)
        mine = per_server[e.member.domain]
        peak["posts"] = max(peak["posts"], len(recent))
        peak["new"] = max(peak["new"], new)
        peak["server"] = max(peak["server"], mine)
        if mine >= min_server_posts:
            share = max(share, mine / len(recent))
    posts = [e for e in day if e.kind == "post"]
    return Peaks(
        posts=len(posts),
        follows=sum(1 for e in day if e.kind == "follow"),
        active_members=len({e.member.uri for e in day}),
        servers=len({e.member.domain for e in posts}),
        peak_posts=peak["posts"],
        peak_new_member_posts=peak["new"],
        peak_follows=peak["follows"],
        peak_server_posts=peak["server"],
        peak_server_share=round(share, 3),
        busiest_hour_posts=max(hours.values()),
    )
