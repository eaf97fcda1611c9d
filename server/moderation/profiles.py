"""A group's leaders change its profile: purpose, benefits, objectives, rules, welcome, joining,
posting, and its avatar and header.

One transaction writes the change and its moderation-log entry and queues the group's
``Update`` with its whole actor document to every member server, as Mastodon sends a
profile change, so members' apps show the new purpose, profile fields and pictures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from server import images
from server.errors import BadRequest
from server.federation import activities
from server.groups.fanout import queue_fanout
from server.groups.media import delete_media, load_group_document, media_of, save_media
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


#: A picture to set (the uploaded file's bytes) or, as None, to remove; by kind (``icon``, ``image``).
MediaEdit = Mapping[str, bytes | None]


async def _prepare(media: MediaEdit) -> dict[str, images.PreparedImage | None]:
    """Every upload checked and re-encoded before anything is written (a thread each: it is CPU work)."""
    prepared: dict[str, images.PreparedImage | None] = {}
    for kind, data in media.items():
        if kind not in images.SHAPES:
            raise BadRequest(f"unknown picture {kind!r}")
        prepared[kind] = None if data is None else await asyncio.to_thread(images.prepare, data, kind)
    return prepared


async def _apply_media(
    conn: AsyncConnection, group_id: int, prepared: Mapping[str, images.PreparedImage | None]
) -> tuple[list[str], list[str]]:
    """Store and delete pictures; what changed and what was removed, by their people's names."""
    current = await media_of(conn, group_id)
    changed, removed = [], []
    for kind, image in prepared.items():
        if image is None:
            if await delete_media(conn, group_id, kind):
                removed.append(images.LABELS[kind])
        elif kind not in current or current[kind].digest != image.digest:
            await save_media(conn, group_id, image)
            changed.append(images.LABELS[kind])
    return changed, removed


async def edit_profile(
    services: Services, group: Group, edit: ProfileEdit, *, by: Moderator, media: MediaEdit | None = None
) -> Group:
    """Apply ``edit`` and ``media`` to ``group`` (``by`` may lead it: see ``actions.local_moderator``);
    returns the group as now. Nothing is written, logged or sent when nothing changes; an
    unacceptable value or picture is ``BadRequest`` with the reason before anything is written."""
    values = edit.values()
    validate_profile(values)
    prepared = await _prepare(media or {})
    changed = {k: v for k, v in values.items() if getattr(group, k) != v}
    if not changed and not prepared:
        return group
    async with services.db.transaction() as conn:
        updated = record(Group, await update_profile(conn, group.id, changed)) if changed else group
        pictures, removed = await _apply_media(conn, group.id, prepared)
        if not changed and not pictures and not removed:
            return group
        reasons = ["changed " + ", ".join(sorted([*changed, *pictures]))] if changed or pictures else []
        reasons += ["removed " + ", ".join(removed)] if removed else []
        await modlog.write(
            conn,
            group_id=group.id,
            moderator=by.name,
            action="edit",
            target=services.links.group(group.name),
            reason="; ".join(reasons),
        )
        doc = await load_group_document(conn, updated, services.links, host=services.settings.host)
        update = activities.update_actor(services.links.base, doc, published=utcnow())
        await queue_fanout(conn, activities=[update], group_id=group.id, public=True, post_id=None)
    services.wake.set()
    return updated
