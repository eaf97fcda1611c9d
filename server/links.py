"""Every URL Kith publishes, built in one place.

Remote servers store these forever, so they never change once published.
"""

from __future__ import annotations

from dataclasses import dataclass

INSTANCE_ACTOR_NAME = "__instance__"  # outside the name rules, so no user can take it


@dataclass(frozen=True)
class Links:
    """URL builder for one instance (``base`` is ``scheme://domain``)."""

    base: str

    def actor(self, kind: str, name: str) -> str:
        """The id of a local actor of ``kind`` group, person or application."""
        if kind == "application":
            return f"{self.base}/actor"
        return f"{self.base}/{'groups' if kind == 'group' else 'users'}/{name}"

    def group(self, name: str) -> str:
        return f"{self.base}/groups/{name}"

    def thread(self, name: str, post_id: int) -> str:
        """A thread's page (HTML), named by its first post's number."""
        return f"{self.group(name)}/threads/{post_id}"

    def collection(self, kind: str, name: str, which: str) -> str:
        """``inbox``, ``outbox``, ``followers``, ``following``, ``featured`` or ``moderators``."""
        return f"{self.actor(kind, name)}/{which}"

    def group_media(self, name: str, file_name: str) -> str:
        """A group's avatar or header, by a content-addressed ``file_name`` (``icon-<sha256>.png``)."""
        return f"{self.base}/groups/{name}/media/{file_name}"

    def key_id(self, kind: str, name: str) -> str:
        return f"{self.actor(kind, name)}#main-key"

    @property
    def instance_actor(self) -> str:
        return f"{self.base}/actor"

    @property
    def shared_inbox(self) -> str:
        return f"{self.base}/inbox"

    def activity(self, uid: str) -> str:
        return f"{self.base}/activities/{uid}"
