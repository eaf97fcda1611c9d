"""A group's moderation queue: everything that waits for a decision, oldest first, in one list.

Follow requests (manual groups), held posts (with the guard or rule that held them),
open reports (with each reported post in its thread) and alarms of the last two days
not dismissed (``moderation/notices.py``; crowd control raises them), read from the tables' owners and
merged by when they arrived. Paged by position: a moderator works from the top, and each
decision takes an item out.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from server.groups.following import Follow, pending_requests
from server.groups.membership import Group
from server.groups.posts import AuthoredPost, find_posts
from server.groups.threads import find_authored, held_oldest
from server.moderation import reports
from server.moderation.notices import ModNotice, recent_alarms
from server.moderation.reports import Report

PAGE = 20


@dataclass(frozen=True)
class ReportedPost:
    """A reported post in its thread: the thread's first post and the post it answers, when it is a reply."""

    post: AuthoredPost
    root: AuthoredPost | None = None
    parent: AuthoredPost | None = None


@dataclass(frozen=True)
class ReportView:
    """A report with what it is about, as stored here (``missing``: posts we do not hold)."""

    report: Report
    posts: list[ReportedPost] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QueueItem:
    """One thing waiting: ``kind`` is ``follow``, ``held``, ``report`` or ``alarm``."""

    kind: str
    at: datetime
    follow: Follow | None = None
    post: AuthoredPost | None = None
    report: ReportView | None = None
    alarm: ModNotice | None = None


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    page: int
    more: bool


async def report_view(conn: AsyncConnection, report: Report) -> ReportView:
    """A report with its posts in their threads."""
    stored = await find_posts(conn, report.post_uris)
    ids = [p.id for p in stored.values()]
    context = [i for p in stored.values() for i in (p.root_id, p.parent_id) if i is not None]
    authored = await find_authored(conn, ids + context)
    shown: list[ReportedPost] = []
    for uri in report.post_uris:
        post = stored.get(uri)
        if post is None or post.id not in authored:
            continue
        root = authored.get(post.root_id) if post.root_id is not None else None
        parent = authored.get(post.parent_id) if post.parent_id not in (None, post.root_id) else None  # type: ignore[arg-type]
        shown.append(ReportedPost(authored[post.id], root, parent))
    return ReportView(report, shown, [u for u in report.post_uris if u not in stored])


async def load_queue(conn: AsyncConnection, group: Group, *, page: int = 0) -> QueuePage:
    """Page ``page`` (from 0) of the group's queue, oldest first."""
    want = (page + 1) * PAGE + 1
    follows = [QueueItem("follow", f.created_at, follow=f) for f in await pending_requests(conn, group.id, limit=want)]
    held = [QueueItem("held", p.created_at, post=p) for p in await held_oldest(conn, group.id, limit=want)]
    waiting = [(r.created_at, r) for r in await reports.waiting(conn, group.id, limit=want)]
    report_items = [QueueItem("report", at, report=ReportView(r)) for at, r in waiting]
    alarms = [QueueItem("alarm", a.created_at, alarm=a) for a in await recent_alarms(conn, group.id, limit=want)]
    merged = list(heapq.merge(follows, held, report_items, alarms, key=lambda item: item.at))
    start = page * PAGE
    shown = merged[start : start + PAGE]
    items = [
        QueueItem("report", i.at, report=await report_view(conn, i.report.report)) if i.report is not None else i
        for i in shown
    ]
    return QueuePage(items, page, len(merged) > start + PAGE)
