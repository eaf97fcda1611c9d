"""``moderation.guards.screen``: the automatic guards as a pure function, no database.

Each guard is tested off, just under, at and over its limit, and in the order ``screen``
applies them (the first that speaks decides), so a reordering or an off-by-one fails here.
"""

from __future__ import annotations

import dataclasses

import pytest

from server.federation.objects import parse_post
from server.moderation.guards import ACCEPT, Decision, Guards, looks_like_group, screen

GROUP = "https://kith.test/groups/bookclub"
AUTHOR = "https://mastodon.example/users/alice"


def envelope(content: str = "<p>hello</p>", **fields):
    """A real parsed post by alice to the group, with ``fields`` replaced."""
    env = parse_post(
        {
            "id": "https://mastodon.example/notes/1",
            "type": "Note",
            "attributedTo": AUTHOR,
            "content": content,
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "cc": [GROUP],
        }
    )
    return dataclasses.replace(env, **fields)


def run(guards: Guards, env=None, *, member=0, instance=0, accepted=100, known=frozenset()) -> Decision:
    return screen(
        guards,
        env or envelope(),
        member_posts_last_hour=member,
        instance_posts_last_hour=instance,
        member_accepted_posts=accepted,
        known_groups=known,
    )


def test_no_guards_accepts_everything():
    env = envelope("<p>buy cheap pills at <a href='https://spam.example/x'>here</a></p>")
    assert run(Guards(), env, member=10_000, instance=10_000, accepted=0) == ACCEPT
    assert not Guards().counts_matter and not Guards().known_groups_matter


@pytest.mark.parametrize(
    ("field", "value"),
    [("member_posts_per_hour", 3), ("instance_posts_per_hour", 3), ("hold_first_posts", 1)],
)
def test_counts_matter_only_when_a_counting_guard_is_on(field, value):
    guards = Guards(**{field: value})
    assert guards.counts_matter and not guards.known_groups_matter
    assert Guards(max_group_mentions=2).known_groups_matter and not Guards(max_group_mentions=2).counts_matter


@pytest.mark.parametrize(("posts", "action"), [(0, "accept"), (2, "accept"), (3, "reject"), (9, "reject")])
def test_member_rate_limit(posts, action):
    decision = run(Guards(member_posts_per_hour=3), member=posts)
    assert decision.action == action
    if action == "reject":
        assert decision.reason == "too many posts from this member in the last hour"


@pytest.mark.parametrize(("posts", "action"), [(4, "accept"), (5, "reject")])
def test_instance_rate_limit(posts, action):
    decision = run(Guards(instance_posts_per_hour=5), member=posts, instance=posts)
    assert decision.action == action
    if action == "reject":
        assert decision.reason == "too many posts from this server in the last hour"


@pytest.mark.parametrize(("accepted", "action"), [(0, "hold"), (1, "hold"), (2, "accept"), (50, "accept")])
def test_hold_first_posts(accepted, action):
    decision = run(Guards(hold_first_posts=2), accepted=accepted)
    assert decision.action == action
    if action == "hold":
        assert decision.reason == "a new member's first posts wait for a moderator"


@pytest.mark.parametrize("filter_action", ["hold", "reject"])
@pytest.mark.parametrize(
    ("content", "fields", "matches"),
    [
        ("<p>Cheap PILLS today</p>", {}, True),  # case-insensitive
        ("<p>pills</p>", {}, True),
        ("<p>spillsover</p>", {}, False),  # whole words only
        ("<p>no match</p>", {"summary": "Pills inside"}, True),  # the content warning is screened
        ("<p>no match</p>", {"name": "about pills"}, True),  # and the title
        ("<p><a href='https://x.example/pills'>link</a></p>", {}, False),  # attributes are not text
        ("<p>pil<b>ls</b></p>", {}, False),  # tags split words
    ],
)
def test_keywords(filter_action, content, fields, matches):
    guards = Guards(keywords=("pills",), filter_action=filter_action)
    decision = run(guards, envelope(content, **fields))
    if matches:
        assert decision == Decision(filter_action, "contains a filtered word (pills)")
    else:
        assert decision == ACCEPT


def test_keyword_with_regex_characters_is_literal_and_empty_keywords_are_skipped():
    guards = Guards(keywords=("", "a.b"), filter_action="reject")
    assert run(guards, envelope("<p>see a.b here</p>")).action == "reject"
    assert run(guards, envelope("<p>see axb here</p>")) == ACCEPT  # the dot is not a wildcard
    assert run(Guards(keywords=("",)), envelope("<p>anything</p>")) == ACCEPT


def test_keyword_ending_in_punctuation_matches_as_a_whole_word():
    guards = Guards(keywords=("c++",), filter_action="reject")
    assert run(guards, envelope("<p>I write c++ daily</p>")).action == "reject"
    assert run(guards, envelope("<p>I write c++</p>")).action == "reject"
    assert run(guards, envelope("<p>abc++x is not it</p>")) == ACCEPT


@pytest.mark.parametrize(
    ("href", "matches"),
    [
        ("https://spam.example/buy", True),
        ("https://SHOP.Spam.Example/buy", True),  # subdomains, any case
        ("https://notspam.example/", False),  # a suffix that is not a parent domain
        ("https://spam.example.org/", False),
        ("/relative/link", False),
    ],
)
def test_link_domains(href, matches):
    guards = Guards(link_domains=("spam.example",), filter_action="reject")
    decision = run(guards, envelope(f'<p><a href="{href}">look</a></p>'))
    assert decision == (Decision("reject", "links to a filtered domain (spam.example)") if matches else ACCEPT)


def mentions_of(n: int) -> tuple[str, ...]:
    return tuple(f"https://lemmy.example/c/group{i}" for i in range(n))


@pytest.mark.parametrize(("groups", "action"), [(2, "accept"), (3, "reject")])
def test_max_group_mentions(groups, action):
    env = envelope(mentions=mentions_of(groups), audience=())
    decision = run(Guards(max_group_mentions=2), env)
    assert decision.action == action
    if action == "reject":
        assert decision.reason == f"mentions {groups} groups (at most 2)"


def test_group_mentions_count_distinct_groups_in_mentions_and_audience():
    # The same group mentioned and addressed counts once; people are not groups.
    env = envelope(
        mentions=(GROUP, "https://mastodon.example/users/bob"),
        audience=(GROUP, "https://www.w3.org/ns/activitystreams#Public", "https://kbin.example/m/tech"),
    )
    assert run(Guards(max_group_mentions=2), env) == ACCEPT
    assert run(Guards(max_group_mentions=1), env).action == "reject"
    # A group known by its actor type, whatever its URL looks like.
    odd = "https://forum.example/spaces/42"
    env = envelope(mentions=(GROUP, odd), audience=())
    assert run(Guards(max_group_mentions=1), env) == ACCEPT
    assert run(Guards(max_group_mentions=1), env, known=frozenset({odd})).action == "reject"


@pytest.mark.parametrize(
    ("uri", "is_group"),
    [
        ("https://lemmy.example/c/books", True),
        ("https://kbin.example/m/books/", True),
        ("https://kith.test/groups/bookclub", True),
        ("https://lotide.example/communities/7", True),
        ("https://kith.test/groups/bookclub/followers", False),
        ("https://mastodon.example/users/alice", False),
        ("https://mastodon.example/@alice", False),
    ],
)
def test_looks_like_group(uri, is_group):
    assert looks_like_group(uri, frozenset()) is is_group


def test_first_guard_to_speak_decides():
    """Order: group mentions, member rate, instance rate, keywords, links, first posts."""
    everything = Guards(
        hold_first_posts=5,
        keywords=("pills",),
        link_domains=("spam.example",),
        filter_action="hold",
        member_posts_per_hour=1,
        instance_posts_per_hour=1,
        max_group_mentions=1,
    )
    bad = envelope('<p>pills <a href="https://spam.example/">x</a></p>', mentions=mentions_of(2), audience=())
    kw = {"member": 1, "instance": 1, "accepted": 0}
    assert run(everything, bad, **kw).reason.startswith("mentions 2 groups")
    bad = dataclasses.replace(bad, mentions=())
    assert run(everything, bad, **kw).reason.startswith("too many posts from this member")
    assert run(everything, bad, **{**kw, "member": 0}).reason.startswith("too many posts from this server")
    kw = {"member": 0, "instance": 0, "accepted": 0}
    assert run(everything, bad, **kw).reason == "contains a filtered word (pills)"
    bad = envelope('<p><a href="https://spam.example/">x</a></p>')
    assert run(everything, bad, **kw).reason == "links to a filtered domain (spam.example)"
    assert run(everything, envelope("<p>fine</p>"), **kw).reason.startswith("a new member's first posts")
    assert run(everything, envelope("<p>fine</p>"), accepted=5) == ACCEPT
