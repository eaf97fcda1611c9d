"""The welcome: each newly accepted member gets one direct message from the group.

The one owner of the ``welcomes`` table. The message carries the group's welcome text and
its rules, is addressed to the new member alone (never public, never announced, its id
dereferencing only for that member), and goes at most once in ``AGAIN_AFTER`` to the same
member, so leaving and following again does not bring a second one. A group with no
welcome text, or with the welcome turned off, sends nothing.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation import activities, outbound
from server.federation.actors import RemoteActor
from server.federation.delivery import enqueue
from server.federation.serialize import rules_html, text_to_html
from server.groups.membership import Group
from server.services import Services
from server.tables import welcomes
from server.types import utcnow

AGAIN_AFTER = timedelta(days=30)


def welcome_html(group: Group) -> str:
    """The message's body: the welcome text, then the rules."""
    return text_to_html(group.welcome) + rules_html(group.rules or "")


async def welcome_member(conn: AsyncConnection, services: Services, group: Group, member: RemoteActor) -> bool:
    """Queue the welcome to ``member`` in the caller's transaction, unless it is off or was sent lately.

    Returns True when a message was queued.
    """
    if not group.welcome_enabled or not group.welcome.strip():
        return False
    now = utcnow()
    last = (
        await conn.execute(
            sa.select(welcomes.c.id, welcomes.c.sent_at).where(
                welcomes.c.group_id == group.id, welcomes.c.actor_uri == member.uri
            )
        )
    ).one_or_none()
    if last is not None and now - last.sent_at < AGAIN_AFTER:
        return False
    if last is None:
        await conn.execute(sa.insert(welcomes).values(group_id=group.id, actor_uri=member.uri, sent_at=now))
    else:
        await conn.execute(sa.update(welcomes).where(welcomes.c.id == last.id).values(sent_at=now))
    create = activities.direct_note(
        services.links.base,
        actor=services.links.group(group.name),
        to=member.uri,
        to_handle=member.handle,
        content_html=welcome_html(group),
        published=now,
    )
    # The note on its own too, so that its id dereferences (for its addressee alone).
    await outbound.store(conn, create["object"], actor_id=group.id, public=False, post_id=None)
    await enqueue(conn, services.db, activity=create, actor_id=group.id, inboxes=[member.inbox])
    return True
