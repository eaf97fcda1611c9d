"""Crowd control as stored: the per-group switch, its thresholds, the anomaly watch and the alarm.

The one owner of the ``crowd_control`` table. Intake and the Follow handler ask it, in
their own transaction, whether crowd control is on and count each post and follow
(``event_counts``: an upsert that answers with this minute's exact count); when the last
ten minutes are an anomaly (``crowd_rules.anomaly``) it turns crowd control on and raises
the alarm. The rules themselves are pure, in
``crowd_rules.py``.

Correct with several worker processes: the counts are rows the database adds to
atomically (the adding statement answers with the count, so concurrent posts never see the
same one), and turning on is a conditional update (``until`` is NULL or past), so of two
processes that see the same anomaly at once exactly one turns it on and raises the alarm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server import event_counts
from server.db import Database
from server.errors import BadRequest
from server.federation.objects import host_or_none
from server.local_actors import LocalActor
from server.moderation import modlog
from server.moderation.crowd_rules import (
    CANDIDATE_PERIOD,
    DEFAULT_HOURS,
    MAX_HOURS,
    Candidate,
    Thresholds,
    Window,
    anomaly,
    block_candidates,
    is_on,
    threshold_error,
)
from server.tables import TS, crowd_control
from server.types import utcnow

log = logging.getLogger("kith.crowd")

ALARM = "alarm"  # ``turned_on_by`` and the mod log's moderator when the anomaly watch turned it on
THRESHOLD_NAMES = ("new_member_posts", "server_share_percent", "server_min_posts", "follows")


@dataclass(frozen=True)
class CrowdControl:
    """A group's crowd control: on while ``until`` is ahead, and the thresholds of its alarm."""

    group_id: int
    until: datetime | None = None
    turned_on_by: str = ""
    reason: str = ""
    thresholds: Thresholds = field(default_factory=Thresholds)
    # True only on the value ``watch_post``/``watch_follow`` return when this very event turned
    # it on (one process of any number): its caller then tells the moderators (the groups tier
    # owns notices, which this tier may not import).
    tripped: bool = False

    def on(self, now: datetime) -> bool:
        """Is it on at ``now``?"""
        return is_on(self.until, now)


def crowd_columns() -> list[sa.ColumnElement[Any]]:
    """The switch and thresholds as ``crowd_*`` columns, to outer-join into a query about a group."""
    names = ("until", "turned_on_by", "reason", *THRESHOLD_NAMES)
    return [crowd_control.c[name].label(f"crowd_{name}") for name in names]


def crowd_from(group_id: int, values: Any, prefix: str = "") -> CrowdControl:
    """A ``CrowdControl`` from a ``crowd_control`` row (or ``crowd_columns()`` with ``prefix="crowd_"``).

    A group without a row (None from an outer join, or every column None) has it off, with the defaults.
    """
    if values is None or getattr(values, prefix + "follows") is None:
        return CrowdControl(group_id)

    def get(name: str) -> Any:
        return getattr(values, prefix + name)

    return CrowdControl(
        group_id=group_id,
        until=get("until"),
        turned_on_by=get("turned_on_by"),
        reason=get("reason"),
        thresholds=Thresholds(**{name: get(name) for name in THRESHOLD_NAMES}),
    )


async def load(conn: AsyncConnection, group_id: int) -> CrowdControl:
    """A group's crowd control (off, with the default thresholds, when it never had any)."""
    row = (await conn.execute(sa.select(crowd_control).where(crowd_control.c.group_id == group_id))).one_or_none()
    return crowd_from(group_id, row)


async def _ensure_row(conn: AsyncConnection, db: Database, group_id: int) -> None:
    stmt = db.insert_ignore(crowd_control, ["group_id"]).values(group_id=group_id, updated_at=utcnow())
    await conn.execute(stmt)


# --------------------------------------------------------------------------- moderators' switch


async def switch(
    conn: AsyncConnection,
    db: Database,
    group: LocalActor,
    *,
    on: bool,
    by: str,
    hours: int = DEFAULT_HOURS,
    now: datetime | None = None,
) -> CrowdControl:
    """A moderator turns crowd control on for ``hours`` (or off), in the caller's transaction, logged."""
    now = now or utcnow()
    if on and (isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_HOURS):
        raise BadRequest(f"hours must be a whole number from 1 to {MAX_HOURS}")
    await _ensure_row(conn, db, group.id)
    until = now + timedelta(hours=hours) if on else None
    await conn.execute(
        sa.update(crowd_control)
        .where(crowd_control.c.group_id == group.id)
        .values(until=until, turned_on_by=by if on else "", reason="", updated_at=now)
    )
    await modlog.write(
        conn,
        group_id=group.id,
        moderator=by,
        action="crowd_control_on" if on else "crowd_control_off",
        target=group.name,
        reason=f"for {hours} hours" if on else "",
        expires_at=until,
    )
    return await load(conn, group.id)


async def set_thresholds(
    conn: AsyncConnection, db: Database, group: LocalActor, changes: dict[str, Any], *, by: str
) -> CrowdControl:
    """Change some of the alarm's thresholds (validated, the rest kept), logged."""
    for name, value in changes.items():
        if name not in THRESHOLD_NAMES:
            raise BadRequest(f"unknown crowd-control threshold {name!r}")
        error = threshold_error(name, value)
        if error:
            raise BadRequest(error)
    if not changes:
        return await load(conn, group.id)
    await _ensure_row(conn, db, group.id)
    await conn.execute(
        sa.update(crowd_control).where(crowd_control.c.group_id == group.id).values(**changes, updated_at=utcnow())
    )
    said = ", ".join(f"{name.replace('_', '-')}={value}" for name, value in changes.items())
    await modlog.write(conn, group_id=group.id, moderator=by, action="crowd_thresholds", target=group.name, reason=said)
    return await load(conn, group.id)


def status_json(crowd: CrowdControl, now: datetime | None = None) -> dict[str, Any]:
    """The switch and thresholds for the CLI and the API."""
    now = now or utcnow()
    on = crowd.on(now)
    return {
        "on": on,
        "until": crowd.until.isoformat().replace("+00:00", "Z") if on and crowd.until else None,
        "turned_on_by": crowd.turned_on_by if on else "",
        "reason": crowd.reason if on else "",
        "thresholds": {name: getattr(crowd.thresholds, name) for name in THRESHOLD_NAMES},
    }


# --------------------------------------------------------------------------- the anomaly watch

POSTS, NEW_MEMBER_POSTS, FOLLOWS = "posts", "new_member_posts", "follows"


def server_key(domain: str) -> str:
    return ("server:" + domain)[:300]  # as event_counts stores keys


def window_columns(group_id: Any) -> list[sa.ColumnElement[Any]]:
    """The group's last ten minutes as ``window_*`` columns of intake's one query about the post's group
    (bind parameters from ``window_params``): the watch costs no round trip of its own."""
    first, last = sa.bindparam("window_first", type_=TS), sa.bindparam("window_last", type_=TS)
    server = sa.bindparam("window_server", type_=sa.String)
    return [
        event_counts.window_column(group_id, POSTS, first, last).label("window_posts"),
        event_counts.window_column(group_id, NEW_MEMBER_POSTS, first, last).label("window_new_member_posts"),
        event_counts.window_column(group_id, server, first, last).label("window_server_posts"),
    ]


def window_params(domain: str, now: datetime) -> dict[str, Any]:
    """The bind parameters of ``window_columns``: the nine minutes before ``now``'s (``watch_post``
    counts ``now``'s own minute exactly as it adds the post), ``domain``'s key."""
    first, last = event_counts.bounds(now, current=False)
    return {"window_first": first, "window_last": last, "window_server": server_key(domain)}


def window_from(row: Any) -> Window:
    """The counts of ``window_columns``: the minutes before this one."""
    return Window(
        posts=int(row.window_posts),
        new_member_posts=int(row.window_new_member_posts),
        server_posts=int(row.window_server_posts),
    )


async def watch_post(
    conn: AsyncConnection,
    db: Database,
    group: LocalActor,
    crowd: CrowdControl,
    before: Window,
    *,
    domain: str,
    new: bool,
    now: datetime,
) -> CrowdControl:
    """Count a post ``group`` takes and turn crowd control on when its last ten minutes, this
    post included, are an anomaly; ``before`` holds the minutes before ``now``'s. Returns the
    crowd control that applies to this post (on, when this post tripped it).

    Exact with any number of processes: this minute's counts come back from the upsert that
    adds the post (its row lock orders concurrent posts), the earlier minutes are settled.
    """
    keys = (POSTS, server_key(domain), *((NEW_MEMBER_POSTS,) if new else ()))  # POSTS first: one lock order
    current = await event_counts.add(conn, db, group.id, keys, now)
    seen = Window(
        posts=before.posts + current[POSTS],
        new_member_posts=before.new_member_posts + current.get(NEW_MEMBER_POSTS, 0),
        server_posts=before.server_posts + current[server_key(domain)],
    )
    return await _maybe_trip(conn, db, group, crowd, anomaly(seen, crowd.thresholds, domain), now)


async def look(conn: AsyncConnection, group_id: int, domain: str, now: datetime) -> Window:
    """The minutes before ``now``'s, as ``watch_post`` wants them, in a query of their own
    (intake folds ``window_columns`` into its query instead)."""
    keys = (POSTS, NEW_MEMBER_POSTS, server_key(domain))
    counts = await event_counts.window(conn, group_id, keys, now, current=False)
    return Window(
        posts=counts[POSTS], new_member_posts=counts[NEW_MEMBER_POSTS], server_posts=counts[server_key(domain)]
    )


async def watch_follow(
    conn: AsyncConnection, db: Database, group: LocalActor, crowd: CrowdControl, *, now: datetime
) -> CrowdControl:
    """A new follow of ``group``: count it, and turn crowd control on when follows jump (exact, as ``watch_post``)."""
    before = await event_counts.window(conn, group.id, (FOLLOWS,), now, current=False)
    current = await event_counts.add(conn, db, group.id, (FOLLOWS,), now)
    reason = anomaly(Window(follows=before[FOLLOWS] + current[FOLLOWS]), crowd.thresholds)
    return await _maybe_trip(conn, db, group, crowd, reason, now)


async def _maybe_trip(
    conn: AsyncConnection, db: Database, group: LocalActor, crowd: CrowdControl, reason: str | None, now: datetime
) -> CrowdControl:
    if reason is None or crowd.on(now):
        return crowd  # ordinary traffic, or already on (it was told once, when it turned on)
    until = now + timedelta(hours=DEFAULT_HOURS)
    await _ensure_row(conn, db, group.id)
    turned = await conn.execute(
        sa.update(crowd_control)
        .where(
            crowd_control.c.group_id == group.id,
            sa.or_(crowd_control.c.until.is_(None), crowd_control.c.until <= now),
        )
        .values(until=until, turned_on_by=ALARM, reason=reason, updated_at=now)
    )
    if turned.rowcount:  # another process may have turned it on a moment ago: then it raised the alarm
        await raise_alarm(conn, group, reason, until=until)
    return replace(crowd, until=until, turned_on_by=ALARM, reason=reason, tripped=bool(turned.rowcount))


async def raise_alarm(conn: AsyncConnection, group: LocalActor, reason: str, *, until: datetime | None = None) -> None:
    """The alarm: the anomaly watch turned crowd control on. In the caller's transaction.

    Writes the mod log entry the console's log and queue page show. The moderators are told by
    direct message by the caller (``groups/crowd_alarm.tell``, from intake and following), in
    this same transaction, when the returned ``CrowdControl.tripped`` says this event tripped it.
    """
    log.warning("crowd control turned on in %s: %s", group.name, reason)
    await modlog.write(
        conn,
        group_id=group.id,
        moderator=ALARM,
        action="crowd_control_alarm",
        target=group.name,
        reason=reason,
        expires_at=until,
    )


# --------------------------------------------------------------------------- the admins' candidates


async def domain_candidates(conn: AsyncConnection, now: datetime | None = None) -> list[Candidate]:
    """Servers whose members were banned from this instance's groups three times in the last day.

    Offered to the admins as domain blocks (the console's domains page): never blocked here.
    """
    now = now or utcnow()
    bans = await modlog.bans_since(conn, now - CANDIDATE_PERIOD)
    return block_candidates((group_id, actor, host_or_none(actor) or "") for group_id, actor in bans)
