"""What every ``kith`` command shares: printing JSON, and a database or the services for one run."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from server.settings import Settings

if TYPE_CHECKING:
    from server.db import Database
    from server.services import Services

T = TypeVar("T")


def print_json(value: Any) -> None:
    """A command's result on stdout, as indented JSON."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


async def with_db(settings: Settings, fn: Callable[[Database], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run ``fn`` with the database (migrated first), closing it afterwards."""
    from server.db import Database

    db = Database(settings.database_url)
    try:
        await db.check()
        if migrate:
            await db.migrate()
        return await fn(db)
    finally:
        await db.dispose()


async def with_services(settings: Settings, fn: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``fn`` with the long-lived services (database, HTTP client, policy), closing them afterwards."""
    from server.services import Services

    services = await Services.open(settings)
    try:
        return await fn(services)
    finally:
        await services.close()
