"""Every outbound activity is built in server/federation/activities.py; each family is checked
against the shape Lemmy (the reference FEP-1b12 implementation) and Mastodon send.

A builder's output must carry every field the recorded activity carries, with the same JSON
type (a string where Lemmy sends a string, a list where it sends a list), and must address
it as the recorded one does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from server.federation import activities
from server.federation.vocab import AS_PUBLIC

LEMMY = Path(__file__).parent / "fixtures" / "payloads" / "lemmy"
PAYLOADS = Path(__file__).parent / "fixtures" / "payloads"
BASE = "https://kith.test"
GROUP = f"{BASE}/groups/bookclub"
MOD = f"{BASE}/users/ann"
POST = "https://mastodon.example/users/alice/statuses/1"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def recorded(name: str) -> dict[str, Any]:
    return json.loads((LEMMY / name).read_text())


def same_shape(ours: dict[str, Any], theirs: dict[str, Any], *, nested: bool = True) -> None:
    """Every field of ``theirs`` is in ``ours`` with the same JSON type (an embedded object's too)."""
    for key, value in theirs.items():
        if key == "@context":
            continue
        assert key in ours, f"missing {key!r}"
        assert type(ours[key]) is type(value), (
            f"{key!r}: {type(ours[key]).__name__} where Lemmy sends {type(value).__name__}"
        )
        if nested and isinstance(value, dict) and key == "object":
            same_shape(ours[key], value)


def test_ids_are_fresh_and_ours():
    a = activities.moderation(BASE, kind="Lock", actor=MOD, obj=POST, group_uri=GROUP)
    b = activities.moderation(BASE, kind="Lock", actor=MOD, obj=POST, group_uri=GROUP)
    assert a["id"] != b["id"] and a["id"].startswith(f"{BASE}/activities/")


def test_accept_follow_as_lemmy():
    follow = {
        "id": "https://m.example/f/1",
        "type": "Follow",
        "actor": "https://m.example/u/a",
        "object": GROUP,
        "to": [GROUP],
    }
    ours = activities.accept_follow(BASE, GROUP, follow)
    # The embedded Follow keeps only what Mastodon matches on (checked below), not Lemmy's ``to``.
    same_shape(ours, recorded("accept.json"), nested=False)
    assert ours["to"] == ["https://m.example/u/a"] and ours["object"]["id"] == follow["id"]
    assert set(ours["object"]) == {"id", "type", "actor", "object"}  # what Mastodon matches on
    assert activities.reject_follow(BASE, GROUP, follow)["type"] == "Reject"


def test_announce_of_a_create_as_lemmy():
    theirs = recorded("announce_create_page.json")
    ours = activities.announce(BASE, GROUP, theirs["object"], published=NOW)
    same_shape(ours, theirs)
    assert ours["object"] is theirs["object"]  # wrapped unchanged (FEP-1b12)
    assert ours["to"] == [AS_PUBLIC] and ours["cc"] == [f"{GROUP}/followers"] and ours["audience"] == GROUP


def test_plain_announce_carries_only_the_id():
    ours = activities.announce(BASE, GROUP, POST, published=NOW)
    assert ours["object"] == POST and ours["published"] == "2026-12-02T12:00:00Z"


@pytest.mark.parametrize(
    "fixture, kind, extra",
    [
        ("lock_page.json", "Lock", {"summary": "off topic"}),
        ("remove_note.json", "Delete", {"summary": "spam"}),
        ("add_mod.json", "Add", {"target": f"{GROUP}/moderators"}),
        ("remove_mod.json", "Remove", {"target": f"{GROUP}/moderators"}),
        ("add_featured_post.json", "Add", {"target": f"{GROUP}/featured"}),
        ("remove_featured_post.json", "Remove", {"target": f"{GROUP}/featured"}),
        (
            "block_user.json",
            "Block",
            {"summary": "spam", "target": GROUP, "removeData": True, "endTime": "2027-01-01T00:00:00Z"},
        ),
    ],
)
def test_moderation_as_lemmy(fixture, kind, extra):
    theirs = recorded(fixture)
    assert theirs["type"] == kind
    ours = activities.moderation(BASE, kind=kind, actor=MOD, obj=POST, group_uri=GROUP, **extra)
    same_shape(ours, theirs)
    assert ours["to"] == [AS_PUBLIC] and ours["cc"] == [GROUP] and ours["audience"] == GROUP


@pytest.mark.parametrize("fixture", ["undo_lock_page.json", "undo_block_user.json", "undo_remove_note.json"])
def test_undo_as_lemmy(fixture):
    theirs = recorded(fixture)
    undone = theirs["object"]
    extra = {k: undone[k] for k in ("summary", "target", "removeData", "endTime") if k in undone}
    inner = activities.moderation(BASE, kind=undone["type"], actor=MOD, obj=POST, group_uri=GROUP, **extra)
    ours = activities.undo(BASE, MOD, inner, GROUP)
    same_shape({k: v for k, v in ours.items() if k != "summary"}, {k: v for k, v in theirs.items() if k != "summary"})
    assert "@context" not in ours["object"] and ours["object"]["id"] == inner["id"]


def test_flag_names_no_reporter():
    theirs = json.loads((PAYLOADS / "mastodon_flag.json").read_text())
    ours = activities.flag(
        BASE, actor=f"{BASE}/actor", objects=[POST], content="spam", to="https://mastodon.example/users/alice"
    )
    for key in ("id", "type", "actor", "object", "content"):
        assert key in ours and key in theirs
    assert ours["actor"] == f"{BASE}/actor"  # the instance, never the person who reported
    assert isinstance(ours["object"], list)


def test_reject_of_a_post_goes_to_its_author_only():
    ours = activities.reject_post(BASE, GROUP, "https://m.example/c/1", "https://m.example/u/a")
    assert ours["type"] == "Reject" and ours["object"] == "https://m.example/c/1"
    assert ours["to"] == ["https://m.example/u/a"] and "cc" not in ours


def test_tombstone():
    doc = activities.tombstone(f"{BASE}/activities/1", "Announce", NOW)
    assert doc["type"] == "Tombstone" and doc["formerType"] == "Announce" and doc["deleted"] == "2026-12-02T12:00:00Z"
