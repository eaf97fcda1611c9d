"""Telling a group's moderators that crowd control turned itself on (an alarm).

``moderation/crowd`` decides and records the alarm; it sits below ``moderation/notices`` in
the layers, so the groups tier, which saw the post or follow that tripped it, tells the
moderators here, in that event's transaction.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from server.groups.membership import Group
from server.moderation.crowd import CrowdControl
from server.moderation.notices import Notice, notify_moderators
from server.services import Services


async def tell(conn: AsyncConnection, services: Services, group: Group, control: CrowdControl) -> bool:
    """Queue the alarm's direct message to every moderator when ``control`` was tripped by this
    event (once, whichever process tripped it). Returns whether it did."""
    if not control.tripped:
        return False
    reason = f"Crowd control turned itself on until {control.until:%Y-%m-%d %H:%M} UTC: {control.reason}"
    link = f"{services.links.base}/console/groups/{group.name}"
    await notify_moderators(conn, services, group, Notice("alarm", reason=reason, link=link))
    return True
