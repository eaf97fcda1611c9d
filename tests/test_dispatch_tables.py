"""The inbox's dispatch tables, without a database: each activity reaches the right handler.

``HANDLERS`` (activity type -> handler) and ``UNDO_HANDLERS`` (undone type -> handlers)
are checked as tables, then ``dispatch`` and ``on_undo`` are run with the handlers
replaced by recorders, so a misrouted pair or a crash on an unknown one fails here.
The sender check in ``dispatch`` uses the real ``DomainPolicy``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from server.inbox.dispatch import HANDLERS, dispatch, ignore
from server.inbox.handlers import announce, content, create, flag, follow, moderation, reaction, undo
from server.inbox.handlers.undo import BY_REFERENCE, UNDO_HANDLERS, on_undo, undone_type
from server.inbox.store import InboxItem
from server.moderation.blocklist.matcher import Block, DomainPolicy

ALICE = "https://mastodon.example/users/alice"

EXPECTED = {
    "Follow": follow.on_follow,
    "Undo": undo.on_undo,
    "Create": create.on_create,
    "Update": content.on_update,
    "Delete": content.on_delete,
    "Like": reaction.on_reaction,
    "Dislike": reaction.on_reaction,
    "EmojiReact": reaction.on_reaction,
    "Announce": announce.on_announce,
    "Lock": moderation.on_lock,
    "Block": moderation.on_block,
    "Add": moderation.on_add_remove,
    "Remove": moderation.on_add_remove,
    "Flag": flag.on_flag,
    "Accept": ignore,
    "Reject": ignore,
}

EXPECTED_UNDO = {
    "Like": (reaction.on_undo_reaction,),
    "Dislike": (reaction.on_undo_reaction,),
    "EmojiReact": (reaction.on_undo_reaction,),
    "Lock": (moderation.on_undo_moderation,),
    "Block": (moderation.on_undo_moderation,),
    "Delete": (moderation.on_undo_moderation,),
    "Follow": (follow.on_undo_follow,),
    BY_REFERENCE: (follow.on_undo_follow, reaction.on_undo_reaction),
}


def test_every_activity_type_maps_to_its_handler():
    assert HANDLERS == EXPECTED


def test_every_undone_type_maps_to_its_handlers():
    assert UNDO_HANDLERS == EXPECTED_UNDO
    assert set(reaction.REACTION_TYPES) <= set(UNDO_HANDLERS)


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        ({"type": "Follow", "id": "x"}, "Follow"),
        ({"type": "Like"}, "Like"),
        ({"type": "Announce"}, "Announce"),  # a type we keep no state for: a key with no handlers
        ("https://mastodon.example/follows/1", BY_REFERENCE),
        ({"id": "x"}, ""),  # no type
        ({"type": ["Follow"]}, ""),  # a list is not a type we route
        ({"type": 7}, ""),
        (None, ""),
        (42, ""),
        ([ALICE], ""),
    ],
)
def test_undone_type(obj, key):
    assert undone_type(obj) == key


def item(activity: dict, actor: str = ALICE) -> InboxItem:
    now = datetime.now(UTC)
    return InboxItem(
        id=1,
        state="queued",
        attempts=0,
        next_attempt_at=now,
        lease_until=None,
        last_error=None,
        created_at=now,
        finished_at=None,
        activity_uri=activity.get("id", "https://mastodon.example/a/1"),
        actor_uri=actor,
        group_id=None,
        body=json.dumps(activity),
    )


def handler_name(h) -> str:
    return h.__module__ + "." + h.__qualname__


def fake_services(policy: DomainPolicy | None = None) -> SimpleNamespace:
    """Just what ``dispatch`` reads before a handler runs: the real domain policy behind ``is_blocked``."""
    policy = policy or DomainPolicy()
    blocklist = SimpleNamespace(policy=policy)
    return SimpleNamespace(blocklist=blocklist, is_blocked=policy.is_suspended)


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, tuple]]:
    """Replace every handler in both tables with a recorder of (handler name, args)."""
    seen: list[tuple[str, tuple]] = []

    def recorder(name):
        async def record(*args):
            seen.append((name, args))

        return record

    for kind, handler in list(HANDLERS.items()):
        monkeypatch.setitem(HANDLERS, kind, handler if handler is ignore else recorder(handler_name(handler)))
    for kind, handlers in list(UNDO_HANDLERS.items()):
        monkeypatch.setitem(UNDO_HANDLERS, kind, tuple(recorder(handler_name(h)) for h in handlers))
    return seen


@pytest.mark.parametrize(("kind", "handler"), [(k, h) for k, h in EXPECTED.items() if h is not ignore])
async def test_dispatch_runs_the_handler_for_the_type(calls, kind, handler):
    activity = {"id": "https://mastodon.example/a/1", "type": kind, "actor": ALICE, "object": "x"}
    services = fake_services()
    inbox_item = item(activity)
    await dispatch(services, inbox_item)
    assert calls == [(handler_name(handler), (services, activity, inbox_item))]


@pytest.mark.parametrize(
    "activity",
    [
        {"type": "Accept", "object": "x"},
        {"type": "Reject", "object": "x"},
        {"type": "Arrive"},  # a type nobody handles
        {"type": "Move"},
        {"type": None},  # (a type that is not a string is refused with a 400 before it is stored)
        {},
    ],
)
async def test_dispatch_ignores_other_types_cleanly(calls, activity):
    await dispatch(fake_services(), item(activity))
    assert calls == []


@pytest.mark.parametrize(
    ("policy", "actor"),
    [
        (DomainPolicy(blocks={"mastodon.example": Block("mastodon.example", "suspend")}), ALICE),
        (DomainPolicy(blocks={"example": Block("example", "suspend")}), ALICE),  # a parent domain
        (DomainPolicy(allowlist_mode=True), ALICE),  # limited federation, not allowed
        (DomainPolicy(suspended_actors=frozenset({ALICE})), ALICE),  # this one account
        (DomainPolicy(), "not a url"),
    ],
)
async def test_dispatch_drops_a_sender_cut_off_since(calls, policy, actor):
    await dispatch(fake_services(policy), item({"type": "Create", "actor": actor, "object": {}}, actor=actor))
    assert calls == []


async def test_dispatch_keeps_a_silenced_or_allowed_sender(calls):
    for policy in (
        DomainPolicy(blocks={"mastodon.example": Block("mastodon.example", "silence")}),
        DomainPolicy(allowlist_mode=True, allows=frozenset({"mastodon.example"})),
        DomainPolicy(suspended_actors=frozenset({"https://mastodon.example/users/bob"})),
    ):
        calls.clear()
        await dispatch(fake_services(policy), item({"type": "Create", "actor": ALICE, "object": {}}))
        assert [name for name, _ in calls] == [handler_name(create.on_create)]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"type": "Follow", "id": "f"}, [follow.on_undo_follow]),
        ({"type": "Like", "id": "l"}, [reaction.on_undo_reaction]),
        ({"type": "Dislike", "id": "l"}, [reaction.on_undo_reaction]),
        ({"type": "EmojiReact", "id": "l"}, [reaction.on_undo_reaction]),
        ({"type": "Lock", "id": "m"}, [moderation.on_undo_moderation]),
        ({"type": "Block", "id": "m"}, [moderation.on_undo_moderation]),
        ({"type": "Delete", "id": "m"}, [moderation.on_undo_moderation]),
        ("https://mastodon.example/follows/1", [follow.on_undo_follow, reaction.on_undo_reaction]),
    ],
)
async def test_undo_runs_the_handlers_for_the_undone_type(calls, obj, expected):
    activity = {"id": "https://mastodon.example/u/1", "type": "Undo", "actor": ALICE, "object": obj}
    inbox_item = item(activity)
    await on_undo("services", activity, inbox_item)
    assert calls == [(handler_name(h), ("services", activity, obj, inbox_item)) for h in expected]


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "Announce", "id": "a"},  # undoing an Announce: nothing of ours to undo
        {"type": "Create", "id": "c"},
        {"type": "Accept", "id": "c"},
        {"id": "no-type"},
        {"type": ["Follow"]},
        None,
        42,
        ["https://mastodon.example/follows/1"],
    ],
)
async def test_undo_of_anything_else_is_ignored_cleanly(calls, obj):
    activity = {"type": "Undo", "actor": ALICE, "object": obj}
    await on_undo("services", activity, item(activity))
    assert calls == []


async def test_undo_without_an_object_is_ignored(calls):
    activity = {"type": "Undo", "actor": ALICE}
    await on_undo("services", activity, item(activity))
    assert calls == []
