"""Pure decisions about what a group accepts. No I/O: facts in, verdict out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """Whether something is allowed, and the reason when it is not."""

    allowed: bool
    reason: str = ""


ALLOW = Verdict(True)


def may_post(posting: str, *, is_member: bool, is_moderator: bool) -> Verdict:
    """May an author post (or reply) in a group with posting policy ``posting``?"""
    if is_moderator or posting == "anyone":
        return ALLOW
    if posting == "members":
        return ALLOW if is_member else Verdict(False, "only members may post in this group")
    return Verdict(False, "only moderators may post in this group")


def may_vote(posting: str, *, is_member: bool, is_moderator: bool, banned: bool) -> Verdict:
    """May an actor vote in one of the group's own polls? Who may post, and every member.

    A group where only moderators post (announcements) still asks its members: there a
    member votes too. Where anyone may post, anyone not banned may vote.
    """
    if banned:
        return Verdict(False, "banned from this group")
    return may_post("members" if posting == "moderators" else posting, is_member=is_member, is_moderator=is_moderator)


def may_change(*, actor: str, author: str, is_moderator: bool) -> Verdict:
    """May ``actor`` update or delete a post by ``author``? Its author or a group moderator."""
    if actor == author or is_moderator:
        return ALLOW
    return Verdict(False, "only the author or a moderator may change a post")
