"""Create of a Note, Page, Article or Question: a member posts or replies in a group."""

from __future__ import annotations

import logging
from typing import Any

from server.db import in_batch
from server.federation.objects import author_of, same_origin
from server.federation.vocab import id_of
from server.groups import polls
from server.groups.intake import Budget, fetch_trusted, take_post
from server.inbox.store import InboxItem
from server.moderation.replies import answers_a_notice, take_reply
from server.queue import Deferred
from server.services import Services

log = logging.getLogger("kith.create")


async def on_create(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """Take a post only from its author: the signed sender must be the object's ``attributedTo``.

    A vote in one of the group's polls is counted by ``groups/polls.py``, never a post.
    A reply to one of the group's direct messages to its moderators is a moderator's
    command (``moderation/replies.py``) or nothing: never a post.

    Membership, bans and guards are all keyed by the author, so a Create by anyone else
    (a neighbour on the author's server included) is refused, as Lemmy refuses it. An
    embedded object that names its author is judged as sent; one by reference, or
    naming none, is fetched from its origin and judged as the origin serves it.
    """
    obj = activity.get("object")
    obj_id = id_of(obj)
    if obj_id is None:
        return
    budget = Budget()
    if not isinstance(obj, dict) or author_of(obj) is None:
        if in_batch():
            raise Deferred("the object must be fetched")
        obj = await fetch_trusted(services, obj_id, budget)
        if obj is None:
            log.info("Create %s: object %s not available from its origin", item.activity_uri, obj_id)
            return
    author = author_of(obj)
    if author != item.actor_uri or not same_origin(author, obj.get("id")):
        # Someone else's post (a forgery, or a relay Kith does not take as a Create),
        # or an id off its author's server: nothing is stored or passed on.
        log.info("Create %s refused: %s is attributed to %s, not its sender", item.activity_uri, obj_id, author)
        return
    if await polls.poll_voted(services, obj):
        # A vote in one of the group's polls: counted (or not) and never a post, never passed on.
        outcome = await polls.take_vote(services, obj, item.actor_uri)
        log.info("Create %s: a vote: %s", item.activity_uri, outcome)
        return
    digest = await answers_a_notice(services, obj)
    if digest is not None:
        # A reply to the group's message to a moderator: a command or nothing, never a group post.
        if in_batch():
            # Rare, and a command runs the moderation actions' own transactions and may fetch:
            # it runs on its own, after the batch, as an activity that needs the network does.
            raise Deferred("a moderator's reply runs on its own")
        outcome = await take_reply(services, digest, obj, item.actor_uri)
        log.info("Create %s: a reply to a moderator notice: %s", item.activity_uri, outcome)
        return
    outcome = await take_post(services, obj, activity=activity, budget=budget)
    log.info("Create %s: %s", item.activity_uri, outcome)
