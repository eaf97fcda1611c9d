"""A group's avatar and header: the one owner of the ``group_media`` table.

The bytes live in the database, so every web process serves them and ``kith backup`` holds
them. Each is published at a content-addressed URL, ``/groups/NAME/media/icon-<sha256>.png``:
a new picture gets a new URL, so the old one may be cached for good and then 404s. Checking
and re-encoding an upload is ``server.images.prepare``; changing one and telling the members
is ``server.moderation.profiles``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import upsert
from server.federation.serialize import ActorImage, actor_document
from server.images import EXTENSIONS, PreparedImage
from server.links import Links
from server.local_actors import LocalActor
from server.rows import record
from server.tables import group_media, local_actors
from server.types import utcnow

KINDS = ("icon", "image")
FILE_NAME = re.compile(r"^(icon|image)-([0-9a-f]{64})\.(png|jpg)$")


@dataclass(frozen=True, slots=True)
class MediaRef:
    """One of a group's pictures without its bytes: what documents and pages link to."""

    kind: str  # icon (the avatar) | image (the header)
    content_type: str
    width: int
    height: int
    digest: str
    updated_at: datetime

    @property
    def file_name(self) -> str:
        """Its last URL segment: kind, content address and extension."""
        return media_file_name(self.kind, self.content_type, self.digest)


def media_file_name(kind: str, content_type: str, digest: str) -> str:
    """A picture's last URL segment: kind, content address and extension (``icon-<sha256>.png``)."""
    return f"{kind}-{digest}.{EXTENSIONS[content_type]}"


@dataclass(frozen=True, slots=True)
class MediaFile:
    """One picture's bytes, as served."""

    content_type: str
    digest: str
    data: bytes


_REF_COLUMNS = [group_media.c[name] for name in MediaRef.__dataclass_fields__]


async def media_of(conn: AsyncConnection, group_id: int) -> dict[str, MediaRef]:
    """The group's pictures by kind (``icon``, ``image``); a kind it has none of is absent."""
    rows = await conn.execute(sa.select(*_REF_COLUMNS).where(group_media.c.group_id == group_id))
    return {r.kind: record(MediaRef, r) for r in rows}


async def save_media(conn: AsyncConnection, group_id: int, image: PreparedImage) -> MediaRef:
    """Make ``image`` the group's picture of its kind, replacing the one before (in the caller's transaction)."""
    values: dict[str, Any] = {
        "content_type": image.content_type,
        "data": image.data,
        "width": image.width,
        "height": image.height,
        "digest": image.digest,
        "updated_at": utcnow(),
    }
    stmt = upsert(
        conn.dialect.name,
        group_media,
        ["group_id", "kind"],
        {"group_id": group_id, "kind": image.kind, **values},
        values,
    )
    row = (await conn.execute(stmt.returning(*_REF_COLUMNS))).one()
    return record(MediaRef, row)


async def delete_media(conn: AsyncConnection, group_id: int, kind: str) -> bool:
    """Remove the group's picture of ``kind``; whether there was one."""
    result = await conn.execute(
        sa.delete(group_media).where(group_media.c.group_id == group_id, group_media.c.kind == kind)
    )
    return bool(result.rowcount)


async def media_file(conn: AsyncConnection, group_name: str, file_name: str) -> MediaFile | None:
    """The bytes a media URL names, when it names the group's current picture of that kind; else None
    (a replaced picture's old address, a digest never stored, a name not of this shape)."""
    match = FILE_NAME.match(file_name)
    if match is None:
        return None
    kind, digest, extension = match.groups()
    query = (
        sa.select(group_media.c.content_type, group_media.c.digest, group_media.c.data)
        .select_from(group_media.join(local_actors, local_actors.c.id == group_media.c.group_id))
        .where(
            local_actors.c.name == group_name,
            local_actors.c.kind == "group",
            group_media.c.kind == kind,
            group_media.c.digest == digest,
        )
    )
    row = (await conn.execute(query)).one_or_none()
    if row is None or EXTENSIONS.get(row.content_type) != extension:
        return None
    return MediaFile(row.content_type, row.digest, bytes(row.data))


def actor_images(refs: dict[str, MediaRef], links: Links, group_name: str) -> dict[str, ActorImage]:
    """The pictures as the actor document names them: ``icon`` and ``image``, with type and URL."""
    return {
        kind: ActorImage(ref.content_type, links.group_media(group_name, ref.file_name)) for kind, ref in refs.items()
    }


def group_document(actor: LocalActor, refs: dict[str, MediaRef], links: Links, *, host: str) -> dict[str, Any]:
    """The group's actor document with its avatar and header (the one way to build it, so the
    document served at its id and the one an ``Update`` carries never differ)."""
    images = actor_images(refs, links, actor.name)
    return actor_document(actor, links, host=host, icon=images.get("icon"), image=images.get("image"))


async def load_group_document(conn: AsyncConnection, actor: LocalActor, links: Links, *, host: str) -> dict[str, Any]:
    """``group_document`` with the group's pictures read first."""
    return group_document(actor, await media_of(conn, actor.id), links, host=host)
