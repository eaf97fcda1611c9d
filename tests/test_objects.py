import pytest

from server.federation.objects import ParseError, parse_post, poll_options, same_origin


@pytest.mark.parametrize(
    ("urls", "same"),
    [
        (("https://a.example/u/1", "https://a.example/n/2"), True),
        (("https://a.example/u/1", "https://b.example/n/2"), False),
        (("http://127.0.0.1:1111/u/bob", "http://127.0.0.1:2222/n/1"), False),  # two servers on one host
        (("https://a.example:8443/u", "https://a.example/n"), False),
        (("http://a.example/u", "https://a.example/n"), False),
        (("https://a.example/u", None), False),
    ],
)
def test_same_origin_compares_scheme_host_and_port(urls, same):
    assert same_origin(*urls) is same


def test_parse_post_sanitises_and_reads_addressing():
    env = parse_post(
        {
            "id": "https://a.example/n/1",
            "type": "Note",
            "attributedTo": "https://a.example/u/1",
            "content": '<p onclick="x()">hi<script>bad()</script> <a href="javascript:x">y</a></p>',
            "name": "<b>Title</b> &amp; co",
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "cc": ["https://kith.test/groups/g"],
            "tag": [{"type": "Mention", "href": "https://kith.test/groups/g"}, {"type": "Hashtag", "href": "x"}],
        }
    )
    assert env.content_html == '<p>hi <a rel="nofollow noopener noreferrer">y</a></p>'
    assert env.name == "Title & co"  # plain text; templates escape it on output
    assert env.public and env.mentions == ("https://kith.test/groups/g",)
    assert "https://kith.test/groups/g" in env.audience


@pytest.mark.parametrize(
    "obj",
    [
        "https://a.example/n/1",
        {"type": "Person", "id": "https://a.example/u"},
        {"type": "Note", "attributedTo": "https://a.example/u"},
        {"type": "Note", "id": "https://a.example/n/1"},
    ],
)
def test_not_a_post(obj):
    with pytest.raises(ParseError):
        parse_post(obj)


def test_followers_only_is_not_public():
    env = parse_post(
        {
            "id": "https://a.example/n/1",
            "type": "Note",
            "attributedTo": "https://a.example/u",
            "to": ["https://a.example/u/followers"],
            "cc": ["https://kith.test/groups/g"],
        }
    )
    assert env.public is False


def test_poll_options_ignore_garbage():
    obj = {
        "oneOf": [
            {"name": "yes", "replies": {"totalItems": 3}},
            {"name": "no"},
            {"x": 1},
            {"name": "neg", "replies": {"totalItems": -5}},
        ]
    }
    assert poll_options(obj) == [("yes", 3), ("no", 0), ("neg", 0)]
