"""Incoming reports (``Flag``) from Mastodon, Lemmy, Mbin and others."""

from __future__ import annotations

import logging
from typing import Any

from server.inbox.store import InboxItem
from server.moderation.reports import receive_flag
from server.services import Services

log = logging.getLogger("kith.flag")


async def on_flag(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    report = await receive_flag(services, activity, item.actor_uri)
    if report is not None:
        log.info("report %s stored (group %s)", report.id, report.group_id)
