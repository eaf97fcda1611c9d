"""Property-based fuzzing of the protocol's object readers (issue 12).

``parse_post``, the same-origin rule, ``host_or_none`` and the ActivityStreams helpers read
JSON a stranger wrote. Whatever shape it has (strings where lists belong, objects where
strings belong, numbers, nulls), they answer or refuse with ``ParseError``; never a
``TypeError``, ``KeyError`` or ``AttributeError`` that would kill the inbox job. The
documents are the ones ``parse_json`` lets through: no NUL, no lone surrogate.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.federation.html import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, MAX_HTML, plain_text, sanitize_html
from server.federation.objects import (
    POST_TYPES,
    ParseError,
    PostEnvelope,
    _same_origin_parsed,
    host_or_none,
    origin_or_none,
    parse_post,
    parse_time,
    poll_options,
    refused,
    same_origin,
)
from server.federation.vocab import as_list, id_of, ids_of, is_public

PURE = settings(max_examples=150, deadline=None)
# Building nested documents is most of the cost; fewer of them keep the file within seconds.
NESTED = settings(max_examples=100, deadline=None)

AS2_KEYS = [
    "id", "type", "actor", "attributedTo", "to", "cc", "content", "contentMap", "inReplyTo", "url", "tag",
    "attachment", "audience", "name", "summary", "href", "published", "updated", "sensitive", "oneOf",
    "anyOf", "replies", "totalItems",
]  # fmt: skip
# Strings parse_json can return: anything but NUL and lone surrogates.
json_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
urls = st.sampled_from(
    ["https://a.example", "http://a.example:8080", "https://A.EXAMPLE.", "https://b.example", "https://[::1]", ""]
).flatmap(lambda base: st.builds(lambda path: base + path, json_text))
interesting_strings = (
    json_text
    | urls
    | st.sampled_from(
        [*sorted(POST_TYPES), "Mention", "Public", "as:Public", "https://www.w3.org/ns/activitystreams#Public"]
    )
    | st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02T03:04:05+14:00", "2026-01-02", "9999-12-31T23:59:59-23:59"])
)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | interesting_strings
as2_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(AS2_KEYS) | json_text, inner, max_size=5)
    ),
    max_leaves=15,
)
as2_objects = st.dictionaries(st.sampled_from(AS2_KEYS), as2_values, max_size=12)
# Objects that reach deep into parse_post: a post type, a usable id and author.
post_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(sorted(POST_TYPES)) | as2_values,
        "id": urls | as2_values,
        "attributedTo": urls | as2_values,
    },
    optional={k: as2_values for k in AS2_KEYS if k not in ("type", "id", "attributedTo")},
)


_NOTE = {"type": "Note", "id": "https://a.example/1", "attributedTo": "https://a.example/u"}


def _check_envelope(post: PostEnvelope) -> None:
    assert post.type in POST_TYPES
    assert isinstance(post.uri, str) and host_or_none(post.uri) is not None
    assert isinstance(post.author, str) and host_or_none(post.author) is not None
    assert all(isinstance(a, str) and a for a in post.audience)
    assert all(isinstance(m, str) for m in post.mentions)
    assert post.in_reply_to is None or isinstance(post.in_reply_to, str)
    assert post.url is None or post.url.startswith(("https://", "http://"))
    assert post.name is None or (isinstance(post.name, str) and len(post.name) <= 500)
    assert post.summary is None or (isinstance(post.summary, str) and len(post.summary) <= 500)
    assert isinstance(post.content_html, str)
    assert isinstance(post.sensitive, bool) and isinstance(post.public, bool)
    for moment in (post.published, post.updated):
        assert moment is None or moment.utcoffset() is not None


def _parse_or_refuse(obj: Any) -> None:
    try:
        post = parse_post(obj)
    except ParseError as exc:
        assert str(exc)
        return
    _check_envelope(post)


@NESTED
@given(as2_values | as2_objects)
@example({"type": {"name": "Note"}})  # an object where the type belongs: unhashable
@example({"type": [["Note"]]})
def test_parse_post_parses_or_refuses_anything(obj: Any) -> None:
    _parse_or_refuse(obj)


@NESTED
@given(post_like)
@example({**_NOTE, "published": "9999-12-31T23:59:59-23:59"})  # was an OverflowError
@example({**_NOTE, "type": ["Note", {"a": 1}]})  # was a TypeError (unhashable dict)
@example({**_NOTE, "contentMap": {"en": 5}})
@example({**_NOTE, "url": [{"href": 1}]})
def test_parse_post_on_near_posts(obj: dict[str, Any]) -> None:
    _parse_or_refuse(obj)


@NESTED
@given(as2_objects)
def test_poll_options_never_fail(obj: dict[str, Any]) -> None:
    for name, votes in poll_options(obj):
        assert isinstance(name, str) and len(name) <= 200
        assert isinstance(votes, int) and votes >= 0


@NESTED
@given(as2_values)
def test_vocab_helpers_total(value: Any) -> None:
    assert isinstance(as_list(value), list)
    ident = id_of(value)
    assert ident is None or isinstance(ident, str)
    assert all(isinstance(i, str) and i for i in ids_of(value))
    assert isinstance(is_public({"to": value, "cc": value}), bool)
    moment = parse_time(value)
    assert moment is None or moment.utcoffset() is not None


@PURE
@given(st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | json_text)
@example("9999-12-31T23:59:59-23:59")  # past datetime.max once in UTC: was an OverflowError
@example("0001-01-01T00:00:00+23:59")
def test_parse_time_total(value: str) -> None:
    moment = parse_time(value)
    assert moment is None or moment.utcoffset() is not None


@NESTED
@given(st.lists(urls | as2_values, min_size=1, max_size=4))
@example(["https://a.example/x", "https://a.example/y"])
@example(["https://a.example/x", "https://A.example/y"])
@example(["https://a.example:443/x", "https://a.example/y"])
@example(["https://a.example/\x7f", "https://a.example/y"])
def test_same_origin_fast_path_agrees_with_the_rule(values: list[Any]) -> None:
    """The prefix shortcut never answers differently from parsing every URL in full."""
    assert same_origin(*values) == _same_origin_parsed(tuple(values))


@NESTED
@given(urls | as2_values)
def test_host_or_none_is_a_host_or_none(value: Any) -> None:
    host = host_or_none(value)
    if host is not None:
        assert host and host == host.lower() and not host.endswith(".")
        assert refused(value, lambda h: h == host)
        assert origin_or_none(value) is not None
    else:
        assert refused(value, lambda h: False)


# ---------------------------------------------------------------------------
# HTML: whatever goes in, nothing that runs comes out.

_HTML_BITS = [
    "<script>alert(1)</script>", "<SCRIPT SRC=//x.example/x.js>", "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>', '<a href="JaVaScRiPt&colon;alert(1)">', '<a href=" javascript:x">',
    "<a href='jav&#x09;ascript:x'>", '<a href="data:text/html,<script>x</script>">', "<svg onload=x>",
    '<p onclick="x" style="color:red">', "<iframe src=https://x.example>", "<!-- <script> -->", "<![CDATA[",
    '<a href="https://ok.example" title="t" class="mention evil">', "<math><mi><mglyph><style><img src=x onerror=y>",
    "<noscript><p title=\"</noscript><img src=x onerror=z>\">", "<textarea><script>", "</p>", "&lt;script&gt;", "<",
    ">", '"', "'", "=", " ", "on", "href", "<a ", "<p ", "javascript:", "<span class=h-card>", "<ol start=x>",
]  # fmt: skip
html_ish = st.lists(st.sampled_from(_HTML_BITS) | json_text, max_size=12).map("".join)
_SCRIPTY = ("javascript:", "vbscript:", "data:")


class _Audit(HTMLParser):
    """Collects what a browser would see in sanitised HTML: tags and their attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _assert_inert(out: str) -> None:
    assert "<script" not in out.lower()
    audit = _Audit()
    audit.feed(out)
    audit.close()
    for tag, attrs in audit.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            # nh3 (ammonia) also keeps its generic attributes, lang and title, on every tag.
            assert name in ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel", "class", "lang", "title"}, (tag, name)
            if name == "href" and value is not None:
                # Browsers drop ASCII whitespace and control characters inside a scheme.
                squeezed = "".join(ch for ch in value if ord(ch) > 0x20).lower()
                assert not squeezed.startswith(_SCRIPTY), value


@PURE
@given(html_ish)
@example('<a href="java\nscript:alert(1)">x</a>')
def test_sanitised_html_holds_nothing_that_runs(html: str) -> None:
    out = sanitize_html(html)
    _assert_inert(out)
    # Sanitising is stable: what comes out passes through again unchanged.
    assert sanitize_html(out) == out


@settings(max_examples=20, deadline=None)
@given(html_ish, st.integers(min_value=0, max_value=50))
def test_sanitised_html_is_capped(html: str, extra: int) -> None:
    long = ("<p>" + "x" * MAX_HTML) + html * extra
    _assert_inert(sanitize_html(long))


@PURE
@given(html_ish, st.integers(min_value=1, max_value=600))
def test_plain_text_keeps_its_limit(text: str, limit: int) -> None:
    out = plain_text(text, limit)
    assert out is None or 0 < len(out) <= limit
