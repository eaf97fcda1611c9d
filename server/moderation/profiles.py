"""A group's leaders change its profile: purpose, benefits, objectives, rules, welcome, joining, posting.

One transaction writes the change and its moderation-log entry and queues the group's
``Update`` with its whole actor document to every member server, as Mastodon sends a
profile change, so members' apps show the new purpose and profile fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from server.federation import activities
from server.federation.serialize import actor_document
from server.groups.fanout import queue_fanout
from server.groups.membership import Group, validate_profile
from server.local_actors import update_profile
from server.moderation import modlog
from server.moderation.actions import Moderator
from server.rows import record
from server.services import Services
from server.types import utcnow


@dataclass(frozen=True)
class ProfileEdit:
    """What to change; a field left None stays as it is."""

    title: str | None = None
    summary: str | None = None
    benefits: str | None = None
    objectives: str | None = None
    rules: str | None = None  # one rule per line
    welcome: str | None = None
    welcome_enabled: bool | None = None
    approval: str | None = None
    posting: str | None = None

    def values(self) -> dict[str, object]:
        """The fields to change, texts with surrounding blank space trimmed."""
        given = {k: v for k, v in asdict(self).items() if v is not None}
        return {k: v.strip() if isinstance(v, str) else v for k, v in given.items()}


async def edit_profile(services: Services, group: Group, edit: ProfileEdit, *, by: Moderator) -> Group:
    """Apply ``edit`` to ``group`` (``by`` may lead it: see ``actions.local_moderator``); returns the group as now."""
    values = edit.values()
    validate_profile(values)
    changed = {k: v for k, v in values.items() if getattr(group, k) != v}
    if not changed:
        return group
    async with services.db.transaction() as conn:
        updated = record(Group, await update_profile(conn, group.id, changed))
        await modlog.write(
            conn,
            group_id=group.id,
            moderator=by.name,
            action="edit",
            target=services.links.group(group.name),
            reason="changed " + ", ".join(sorted(changed)),
        )
        doc = actor_document(updated, services.links, host=services.settings.host)
        update = activities.update_actor(services.links.base, doc, published=utcnow())
        await queue_fanout(conn, activities=[update], group_id=group.id, public=True, post_id=None)
    services.wake.set()
    return updated
