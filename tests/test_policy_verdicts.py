"""``moderation.policy``: who may post and who may change a post, as pure verdicts (no database)."""

from __future__ import annotations

import pytest

from server.moderation.policy import ALLOW, Verdict, may_change, may_post

MEMBERS_ONLY = "only members may post in this group"
MODS_ONLY = "only moderators may post in this group"


@pytest.mark.parametrize(
    ("posting", "is_member", "is_moderator", "expected"),
    [
        ("anyone", False, False, ALLOW),
        ("anyone", True, False, ALLOW),
        ("anyone", False, True, ALLOW),
        ("members", True, False, ALLOW),
        ("members", False, False, Verdict(False, MEMBERS_ONLY)),
        ("members", False, True, ALLOW),  # a moderator need not follow the group
        ("moderators", True, False, Verdict(False, MODS_ONLY)),
        ("moderators", False, False, Verdict(False, MODS_ONLY)),
        ("moderators", True, True, ALLOW),
        ("moderators", False, True, ALLOW),
        ("something-new", True, False, Verdict(False, MODS_ONLY)),  # an unknown policy fails closed
    ],
)
def test_may_post(posting, is_member, is_moderator, expected):
    assert may_post(posting, is_member=is_member, is_moderator=is_moderator) == expected


def test_a_refusal_always_says_why():
    for posting in ("members", "moderators"):
        verdict = may_post(posting, is_member=False, is_moderator=False)
        assert not verdict.allowed and verdict.reason
    assert ALLOW.allowed and ALLOW.reason == ""


ALICE = "https://mastodon.example/users/alice"
BOB = "https://social.example/users/bob"


@pytest.mark.parametrize(
    ("actor", "is_moderator", "allowed"),
    [(ALICE, False, True), (ALICE, True, True), (BOB, True, True), (BOB, False, False)],
)
def test_may_change(actor, is_moderator, allowed):
    verdict = may_change(actor=actor, author=ALICE, is_moderator=is_moderator)
    assert verdict.allowed is allowed
    assert verdict.reason == ("" if allowed else "only the author or a moderator may change a post")


def test_may_change_compares_whole_ids():
    # A prefix or a different case is another actor.
    assert not may_change(actor=ALICE + "x", author=ALICE, is_moderator=False).allowed
    assert not may_change(actor=ALICE.upper(), author=ALICE, is_moderator=False).allowed
