"""What the group page shows of each post, worked out in Python before rendering.

The templates only place these values: a Jinja expression costs several times the same
work in Python (attribute lookups through ``Environment.getattr``, filter and global
calls through the context), and the page shows up to a hundred posts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup

from server.groups.threads import poll_results
from server.web.queries import PageRow, ThreadPage, thread_path

# Replies nest this many levels deep at most; deeper ones are listed, oldest first, under
# their ancestor at the last level, each saying whom it answers. A long back-and-forth
# nests hundreds deep: every level indents, so on a phone the text would end up a word
# wide (and Jinja's recursive loop would run out of stack).
MAX_DEPTH = 6


@dataclass(slots=True)
class PostView:
    """One post (thread root or reply) as the page shows it."""

    id: int
    state: str  # visible | deleted | removed
    removed_reason: str | None
    author_uri: str
    author_label: str  # display name, else handle
    handle: str
    link: str  # the post on its origin
    published_iso: str
    published_text: str
    title: str | None
    summary: str | None  # content warning
    content: Markup  # sanitised with nh3 on arrival
    poll: list[tuple[str, int, int]]  # (option, votes, bar width in %)
    likes: int
    dislikes: int
    pinned: bool
    locked: bool
    reply_count: int  # visible replies (thread roots)
    children: list[PostView] = field(default_factory=list)  # replies shown beneath it
    more_replies: bool = False  # the thread has replies beyond those shown
    thread_url: str | None = None  # its thread's page (roots listed on the group page)
    reply_to: tuple[str, int] | None = None  # (whom, post id) when not nested under its parent


def poll_bars(options: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """Each option with its share of the votes, as a whole percentage (0 when nobody voted)."""
    total = sum(votes for _, votes in options)
    return [(option, votes, round(100 * votes / total) if total else 0) for option, votes in options]


def post_view(row: PageRow) -> PostView:
    """The display values of one row of ``server.web.queries.POST_COLUMNS``."""
    # By position, in POST_COLUMNS' order: a Row's attributes are looked up by name each time.
    (
        post_id, _root_id, _parent_id, state, removed_reason, author_uri, author_name, username, domain,
        url, uri, published, _last_activity_at, title, summary, content_html, kind, _raw,
        likes, dislikes, replies, pinned_at, locked, *_,
    ) = row  # fmt: skip
    handle = f"@{username}@{domain}" if username and domain else author_uri  # as posts.handle_of
    return PostView(
        id=post_id,
        state=state,
        removed_reason=removed_reason,
        author_uri=author_uri,
        author_label=author_name or handle,
        handle=handle,
        link=url or uri,
        published_iso=published.isoformat(),
        published_text=published.strftime("%Y-%m-%d %H:%M"),
        title=title,
        summary=summary,
        content=Markup(content_html),  # sanitised on arrival, so safe to place as is
        poll=poll_bars(poll_results(row)) if kind == "Question" else [],  # [] unless visible
        likes=likes,
        dislikes=dislikes,
        pinned=pinned_at is not None,
        locked=locked,
        reply_count=replies,
    )


def nest_views(replies: list[PageRow], *, max_depth: int = MAX_DEPTH) -> list[PostView]:
    """Replies (oldest first) as a tree of views at most ``max_depth`` deep; a reply whose
    parent is not shown starts a branch."""
    views = {r.id: post_view(r) for r in replies}
    parents: dict[int, PostView] = {}
    top: list[PostView] = []
    for r in replies:
        parent = views.get(r.parent_id)
        if parent is None:
            top.append(views[r.id])
        else:
            parents[r.id] = parent
            parent.children.append(views[r.id])
    order = {r.id: i for i, r in enumerate(replies)}
    # Iterative, not recursive: the tree may be hundreds of levels deep.
    stack = [(view, 1) for view in top]
    while stack:
        view, depth = stack.pop()
        if depth + 1 >= max_depth:
            _flatten_below(view, parents, order)
        else:
            stack.extend((child, depth + 1) for child in view.children)
    return top


def _flatten_below(view: PostView, parents: dict[int, PostView], order: dict[int, int]) -> None:
    """Make every descendant of ``view`` its direct child, oldest first; those that answer
    another descendant say whom (``reply_to``), so the conversation still reads."""
    found: list[PostView] = []
    stack = list(view.children)
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(child.children)
    found.sort(key=lambda v: order[v.id])
    for child in found:
        child.children = []
        parent = parents[child.id]
        if parent is not view:
            child.reply_to = (_whom(parent), parent.id)
    view.children = found


def _whom(view: PostView) -> str:
    """How a reply names the post it answers: its author, unless that post is a tombstone."""
    if view.state == "visible":
        return view.author_label
    return "a deleted post" if view.state == "deleted" else "a removed post"


def credit_group(views: list[PostView], *, uri: str, label: str, handle: str) -> None:
    """Name the group as the author of its own posts in ``views`` and their replies.

    The group's posts (``groups/voice``) have no remote actor row to name their author, so
    without this they show the group's URI where a name and handle belong.
    """
    stack = list(views)
    while stack:
        view = stack.pop()
        if view.author_uri == uri:
            view.author_label, view.handle = label, handle
        if view.reply_to is not None and view.reply_to[0] == uri:  # "in reply to" a group post, named before
            view.reply_to = (label, view.reply_to[1])
        stack.extend(view.children)


def root_view(row: PageRow, group: str) -> PostView:
    """A thread root listed on the group page: its view, linking to the thread's page."""
    view = post_view(row)
    view.thread_url = thread_path(group, view.id)
    return view


def thread_views(
    roots: list[PageRow],
    replies: dict[int, list[PageRow]],
    *,
    group: str,
    shown: int,
    hide: set[int] | frozenset[int] = frozenset(),
) -> list[PostView]:
    """Each thread root of group ``group`` (except those in ``hide``) with its first ``shown``
    replies as a tree, linking to its thread's page.

    ``replies`` may hold one reply more than ``shown``: it only marks that there are more.
    """
    threads = []
    for root in roots:
        if root.id in hide:
            continue
        view = root_view(root, group)
        rows = replies.get(root.id, [])
        view.children = nest_views(rows[:shown])
        view.more_replies = len(rows) > shown
        threads.append(view)
    return threads


def thread_page_view(page: ThreadPage) -> PostView:
    """The thread page's root with every reply read, as a tree (its title links to the origin)."""
    view = post_view(page.root)
    view.children = nest_views(page.replies)
    view.more_replies = page.truncated
    return view
