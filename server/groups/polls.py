"""The group's polls: a ``Question`` the group posts, the votes members' servers send, the counts.

The one owner of the ``polls`` and ``poll_votes`` tables.

A leader asks (``kith group poll``): the group speaks (``groups/voice.speak``) a ``Question``
as Mastodon sends one: ``oneOf`` (or ``anyOf`` when several answers may be picked), each
option a ``Note`` with its ``name`` and ``replies.totalItems``, ``endTime`` and
``votersCount``. Members vote from their own app: their server sends a ``Create`` of a
``Note`` named after the option, ``inReplyTo`` the poll, addressed to the group alone
(Mastodon's ``ActivityPub::Activity::Create#poll_vote?``). The Create handler hands such a
vote here before any intake (``is_vote``), so a vote is never a post: not stored in
``posts``, not shown, not redistributed.

A vote counts once per voter and option (a unique constraint), in a ``oneOf`` poll only the
voter's first option (Mastodon refuses a second vote), only from whom the group's policy
lets vote (``moderation/policy.may_vote``), and only before ``endTime``. Each counted vote
rewrites the Question as stored (the post's ``raw`` and the object served at its id), so the
group page, the API and a fetch of its id show the counts at once. Members' servers hear of
them through ``Update(Question)``: the worker's sweep (``send_updates``) sends one per poll at
most once a minute, and at ``endTime`` a last one with ``closed``. Each send is claimed by a
conditional ``UPDATE`` of the poll's row in the transaction that queues it, so however many
workers sweep, each change goes out once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BadRequest
from server.federation import activities, outbound
from server.federation.vocab import CONTEXT, id_of, iso
from server.groups import posts
from server.groups.fanout import queue_fanout
from server.groups.following import member_column
from server.groups.membership import get_group, get_group_by_id
from server.groups.posts import Post
from server.groups.voice import check_text, speak
from server.moderation.authority import leader_name, moderator_column
from server.moderation.policy import may_vote
from server.moderation.rulebook import ban_columns, ban_in_force
from server.rows import record
from server.services import Services
from server.tables import local_actors, poll_votes, polls
from server.tables import posts as posts_table
from server.types import utcnow

log = logging.getLogger("kith.polls")

# Mastodon's own polls allow 4 options of 50 characters (app/validators/poll_options_validator.rb)
# lasting 5 minutes to a month (poll_expiration_validator.rb); it shows a remote poll with more
# and longer options unchecked, as GoToSocial (6 x 50 by default) and Pleroma (20 x 200) do. Ten
# options of 100 characters read whole on all of them; an hour to 30 days fits Mastodon's range.
MIN_OPTIONS, MAX_OPTIONS = 2, 10
MAX_OPTION_CHARS = 100
MIN_HOURS, MAX_HOURS, DEFAULT_HOURS = 1, 720, 24
UPDATE_EVERY = timedelta(seconds=60)  # at most one Update(Question) per poll per minute
SWEEP_SECONDS = 5.0  # how often a worker looks for polls with news
SWEEP_BATCH = 100
VOTE_TYPES = frozenset({"Note", "Answer"})  # Mastodon and Misskey send a Note, Pleroma an Answer


@dataclass(frozen=True, slots=True)
class Poll:
    """One of the group's own polls (its post is the Question)."""

    post_id: int
    group_id: int
    multiple: bool
    options: str  # JSON list of option names
    ends_at: datetime
    closed_at: datetime | None
    changed_at: datetime | None
    sent_at: datetime

    @property
    def names(self) -> list[str]:
        """The options, in order."""
        names: list[str] = json.loads(self.options)
        return names


# --------------------------------------------------------------------------- pure parts


def check_poll(question: str, options: list[str], hours: int) -> tuple[str, list[str]]:
    """The question and options as they will be sent, or ``BadRequest`` saying what is wrong."""
    question, _ = check_text(question, None)
    names = [" ".join((o or "").split()) for o in options]  # one line each
    if not MIN_OPTIONS <= len(names) <= MAX_OPTIONS:
        raise BadRequest(f"a poll has {MIN_OPTIONS} to {MAX_OPTIONS} options; {len(names)} given")
    for name in names:
        if not name:
            raise BadRequest("an option is empty")
        if len(name) > MAX_OPTION_CHARS:
            raise BadRequest(f"the option {name[:20]!r}... is {len(name)} characters; at most {MAX_OPTION_CHARS}")
        if "\x00" in name:
            raise BadRequest("an option contains a NUL character")
    if len(set(names)) != len(names):
        raise BadRequest("the options are not unique")
    if isinstance(hours, bool) or not isinstance(hours, int) or not MIN_HOURS <= hours <= MAX_HOURS:
        raise BadRequest(f"a poll lasts {MIN_HOURS} to {MAX_HOURS} hours; {hours} given")
    return question, names


def choices_key(multiple: bool) -> str:
    """``anyOf`` when a voter may pick several options, else ``oneOf``."""
    return "anyOf" if multiple else "oneOf"


def question_fields(
    names: list[str],
    *,
    multiple: bool,
    ends_at: datetime,
    counts: dict[str, int] | None = None,
    voters: int = 0,
    closed: datetime | None = None,
) -> dict[str, Any]:
    """A Question's own fields as Mastodon sends them: the options with their counts, end, voters."""
    counts = counts or {}
    fields: dict[str, Any] = {
        choices_key(multiple): [
            {"type": "Note", "name": n, "replies": {"type": "Collection", "totalItems": counts.get(n, 0)}}
            for n in names
        ],
        "endTime": iso(ends_at),
        "votersCount": voters,
    }
    if closed is not None:
        fields["closed"] = iso(closed)
    return fields


def is_vote(obj: dict[str, Any], own_prefix: str) -> bool:
    """Might ``obj`` be a vote in one of our polls? A Note (or Answer) with a ``name``, replying to one of our objects.

    Cheap, no I/O: whether it replies to a poll, and names one of its options, is ``poll_voted``'s to ask.
    """
    in_reply_to = id_of(obj.get("inReplyTo"))
    kind = obj.get("type")
    return (
        isinstance(kind, str)
        and kind in VOTE_TYPES
        and isinstance(obj.get("name"), str)
        and in_reply_to is not None
        and in_reply_to.startswith(own_prefix)
    )


# --------------------------------------------------------------------------- asking


async def create_poll(
    services: Services,
    group_name: str,
    by_user: str,
    *,
    question: str,
    options: list[str],
    multiple: bool = False,
    hours: int = DEFAULT_HOURS,
    now: datetime | None = None,
) -> Post:
    """The group asks ``question`` (its owner or a moderator, ``by_user``): a Question to every member server."""
    question, names = check_poll(question, options, hours)
    now = now or utcnow()
    ends_at = now + timedelta(hours=hours)
    async with services.db.transaction() as conn:
        group = await get_group(conn, group_name)
        extra = question_fields(names, multiple=multiple, ends_at=ends_at)
        post = await speak(conn, services, group, by_user, text=question, kind="Question", extra=extra)
        await conn.execute(
            sa.insert(polls).values(
                post_id=post.id,
                group_id=group.id,
                multiple=multiple,
                options=json.dumps(names),
                ends_at=ends_at,
                sent_at=now,
            )
        )
    services.wake.set()
    return post


async def find_poll(conn: AsyncConnection, post_id: int) -> Poll | None:
    """The poll whose Question is post ``post_id``, or None."""
    row = (await conn.execute(sa.select(polls).where(polls.c.post_id == post_id))).one_or_none()
    return None if row is None else record(Poll, row)


async def tally(conn: AsyncConnection, post_id: int) -> tuple[dict[str, int], int]:
    """Votes per option and how many people voted, in one statement each (bounded by the poll)."""
    per_option = sa.select(poll_votes.c.option, sa.func.count()).where(poll_votes.c.post_id == post_id)
    counts = {o: int(n) for o, n in (await conn.execute(per_option.group_by(poll_votes.c.option))).all()}
    voters = sa.select(sa.func.count(sa.distinct(poll_votes.c.voter_uri))).where(poll_votes.c.post_id == post_id)
    return counts, int((await conn.execute(voters)).scalar_one())


async def _restate(conn: AsyncConnection, poll: Poll, post: Post, *, closed: datetime | None) -> dict[str, Any]:
    """Rewrite the Question as stored with the current counts: on the group page, in the API and at its id."""
    counts, voters = await tally(conn, poll.post_id)
    obj = json.loads(post.raw)
    obj.pop(choices_key(not poll.multiple), None)
    obj.update(question_fields(poll.names, multiple=poll.multiple, ends_at=poll.ends_at, counts=counts, voters=voters))
    if closed is not None:
        obj["closed"] = iso(closed)
    await posts.set_raw(conn, post.id, obj)
    await outbound.replace_body(conn, obj["id"], {"@context": CONTEXT, **obj})
    return obj


# --------------------------------------------------------------------------- voting


def _voting_query(voter: str, leader: str | None) -> sa.Select[Any]:
    """The poll by its Question's URI, its post's state, the group's posting policy and the voter's standing there."""
    group_id = polls.c.group_id
    return (
        sa.select(
            polls,
            posts_table.c.state.label("post_state"),
            local_actors.c.posting,
            member_column(group_id, voter),
            *ban_columns(group_id, voter),
            moderator_column(group_id, voter, leader).label("moderator"),
        )
        .join(posts_table, posts_table.c.id == polls.c.post_id)
        .join(local_actors, local_actors.c.id == group_id)
        .where(posts_table.c.uri == sa.bindparam("question"))
        # Votes in one poll wait for each other (PostgreSQL; SQLite's writers are serial anyway):
        # a voter's second option in a oneOf poll sees the first.
        .with_for_update(of=polls)
    )


async def poll_voted(services: Services, obj: dict[str, Any]) -> bool:
    """Is ``obj`` a vote in one of the group's polls (it names one of its options)? Then never a post."""
    if not is_vote(obj, services.links.activity("")):
        return False
    async with services.db.read() as conn:
        row = (
            await conn.execute(
                sa.select(polls.c.options)
                .join(posts_table, posts_table.c.id == polls.c.post_id)
                .where(posts_table.c.uri == id_of(obj.get("inReplyTo")))
            )
        ).one_or_none()
    return row is not None and obj["name"] in json.loads(row.options)


async def take_vote(services: Services, obj: dict[str, Any], voter: str, *, now: datetime | None = None) -> str:
    """Count ``voter``'s vote ``obj`` (already checked to be theirs, from their origin); what happened, for logs.

    ``counted``, or why not: the poll is closed, the voter may not vote, already voted
    (the same option again, or a second one in a ``oneOf`` poll).
    """
    now = now or utcnow()
    option = obj.get("name")
    question = id_of(obj.get("inReplyTo"))
    if not isinstance(option, str) or question is None:
        return "ignored: not a vote"
    leader = leader_name(voter, services.links)
    async with services.db.transaction() as conn:
        row = (await conn.execute(_voting_query(voter, leader), {"question": question})).one_or_none()
        if row is None:
            return "ignored: no such poll"
        poll = record(Poll, row)
        if row.post_state != "visible":
            return "ignored: the poll is not shown"
        if poll.closed_at is not None or now >= poll.ends_at:
            return "ignored: the poll is closed"
        if option not in poll.names:
            return "ignored: not an option"
        banned = bool(row.banned) and ban_in_force(row.ban_expires_at)
        verdict = may_vote(row.posting, is_member=bool(row.member), is_moderator=bool(row.moderator), banned=banned)
        if not verdict.allowed:
            return f"refused: {verdict.reason}"
        mine = sa.select(poll_votes.c.option).where(
            poll_votes.c.post_id == poll.post_id, poll_votes.c.voter_uri == voter
        )
        earlier = set((await conn.execute(mine)).scalars())
        if option in earlier:
            return "ignored: duplicate"
        if earlier and not poll.multiple:
            return "ignored: already voted in a single-choice poll"
        insert = services.db.insert_ignore(poll_votes, ["post_id", "voter_uri", "option"])
        added = await conn.execute(
            insert.values(post_id=poll.post_id, voter_uri=voter, option=option, created_at=now).returning(
                poll_votes.c.id
            )
        )
        if added.scalar_one_or_none() is None:
            return "ignored: duplicate"
        await conn.execute(
            sa.update(polls)
            .where(polls.c.post_id == poll.post_id)
            .values(changed_at=sa.func.coalesce(polls.c.changed_at, now))
        )
        post = await posts.find_post_by_id(conn, poll.post_id)
        assert post is not None  # joined above, in this transaction
        await _restate(conn, poll, post, closed=None)
    return "counted"


# --------------------------------------------------------------------------- telling members


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Open polls with a change not yet sent whose last send is a minute old, and polls past their end."""
    return sa.and_(
        polls.c.closed_at.is_(None),
        sa.or_(
            sa.and_(polls.c.changed_at.is_not(None), polls.c.sent_at <= now - UPDATE_EVERY),
            polls.c.ends_at <= now,
        ),
    )


async def send_updates(services: Services, *, now: datetime | None = None) -> int:
    """Queue ``Update(Question)`` for each poll that is due; how many went out.

    Each poll in its own transaction, claimed by a conditional ``UPDATE`` (still due? then
    it is ours: its change is marked sent, or it is closed) that commits with the queued
    Update, so two workers sweeping at once send each change once, and a crash sends it later.
    """
    now = now or utcnow()
    async with services.db.read() as conn:
        due = list((await conn.execute(sa.select(polls.c.post_id).where(_due(now)).limit(SWEEP_BATCH))).scalars())
    sent = 0
    for post_id in due:
        async with services.db.transaction() as conn:
            closing = polls.c.ends_at <= now
            claim = (
                sa.update(polls)
                .where(polls.c.post_id == post_id, _due(now))
                .values(
                    sent_at=now,
                    changed_at=None,
                    closed_at=sa.case((closing, now), else_=None),
                )
                .returning(*polls.c)
            )
            row = (await conn.execute(claim)).one_or_none()
            if row is None:
                continue  # another worker took it
            poll = record(Poll, row)
            post = await posts.find_post_by_id(conn, post_id)
            if post is None or post.state != "visible":
                continue  # removed or deleted: nothing more to say about it (claimed, so never again)
            obj = await _restate(conn, poll, post, closed=poll.ends_at if poll.closed_at is not None else None)
            group = await get_group_by_id(conn, poll.group_id)
            update = activities.update_post(
                services.links.base, actor=services.links.group(group.name), obj=obj, published=now
            )
            await queue_fanout(conn, activities=[update], group_id=group.id, public=True, post_id=post.id)
            sent += 1
    if sent:
        services.wake.set()
    return sent


async def sweep_forever(services: Services, stop: asyncio.Event) -> None:
    """The worker's periodic sweep: ``send_updates`` every few seconds until ``stop``."""
    while not stop.is_set():
        try:
            await send_updates(services)
        except Exception:  # the next sweep tries again; nothing was claimed without being sent
            log.warning("poll updates failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SWEEP_SECONDS)
