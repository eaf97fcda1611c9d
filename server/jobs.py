"""The job kinds Kith runs in the background, wired to their queue tables."""

from __future__ import annotations

from server.services import Services
from server.worker import Worker


def build_worker(services: Services) -> Worker:
    """A worker for every background job kind, sharing the services."""
    worker = Worker(services.db, [])
    services.wake = worker.wake
    return worker
