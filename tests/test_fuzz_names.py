"""Property-based fuzzing of names, handles, domains and the blocklist CSV (issue 12).

Local names, WebFinger resources (``acct:name@domain`` or an actor URL), blockable
domains (IDNA), and Mastodon's blocklist CSV are all typed by strangers or admins. Each
reader answers or refuses with its typed error (a 400, 404 or 422 with a reason), never
another exception, and a domain it accepts is already in its stored form.
"""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.db import Database
from server.errors import BadRequest, NotFound, Unprocessable
from server.federation.urls import origin_of
from server.groups.membership import group_name_from_uri
from server.links import INSTANCE_ACTOR_NAME, Links
from server.moderation.blocklist.mastodon_csv import CSV_HEADER, import_csv, parse_csv
from server.moderation.blocklist.matcher import (
    MAX_DOMAIN,
    SEVERITIES,
    host_of_authority,
    normalize_domain,
    obfuscated,
    parents,
)
from server.moderation.blocklist.store import BLOCKS, page
from server.names import NAME_RE, RESERVED, InvalidName, validate_name
from server.settings import Settings
from server.wellknown import parse_resource

PURE = settings(max_examples=150, deadline=None)

SETTINGS = Settings(domain="kith.test", scheme="https", database_url="sqlite:///unused.db")
SERVICES = SimpleNamespace(settings=SETTINGS, links=Links(SETTINGS.base_url))

labels = st.sampled_from(
    ["example", "com", "xn--mnchen-3ya", "MÜNCHEN", "ß", "a-b", "-a", "a-", "xn--", "xn--zz", "123", "0x7f", "*",
     "ａ", "\u200d", "a" * 63, "a" * 64, "", " ", "_", "é", "٣", "ﬁ", "\x00", "%41"]
)  # fmt: skip
domain_like = (
    st.builds(
        lambda prefix, parts, suffix: prefix + ".".join(parts) + suffix,
        st.sampled_from(["", "*.", "https://", "http://x@", "["]),
        st.lists(labels | st.text(max_size=8), min_size=1, max_size=5),
        st.sampled_from(["", ".", ":8443", "/path", ":x", "]", "]:443"]),
    )
    | st.text(max_size=40)
    | st.sampled_from(["203.0.113.9", "[2001:db8::1]:443", "::ffff:1.2.3.4", "1.2.3.4.5"])
)


@PURE
@given(st.text(max_size=70) | st.sampled_from(sorted(RESERVED)) | st.from_regex(NAME_RE, fullmatch=True))
def test_validate_name_accepts_exactly_the_rule(name: str) -> None:
    try:
        assert validate_name(name) == name
    except InvalidName as exc:
        assert exc.status == 400 and exc.reason
        assert NAME_RE.match(name) is None or name in RESERVED
    else:
        assert NAME_RE.match(name) and name not in RESERVED


resources = st.builds(
    lambda scheme, name, at, domain: scheme + name + at + domain,
    st.sampled_from(["acct:", "ACCT:", "", "@", "acct:@", "https://kith.test/groups/", "https://kith.test/users/"]),
    st.text(max_size=12) | st.sampled_from(["bookclub", "kith.test", "a%2Fb", "%00", "a%40b"]),
    st.sampled_from(["@", "", "@@", "%40"]),
    st.sampled_from(["kith.test", "KITH.TEST", "other.example", "kith.test:443", ""]) | st.text(max_size=8),
) | st.text(max_size=40)


@PURE
@given(resources)
@example("acct:kith.test@kith.test")
@example("https://kith.test/actor")
@example("acct:a%00@kith.test")  # decoded once more by parse_resource: a NUL in the name
@example("https://kith.test/groups/")  # was the empty name
def test_webfinger_resource_parses_or_is_refused(resource: str) -> None:
    try:
        name = parse_resource(resource, SERVICES)  # type: ignore[arg-type]
    except (BadRequest, NotFound) as exc:
        assert exc.status in (400, 404) and exc.reason
        return
    assert isinstance(name, str) and name
    # A name that reaches the database lookup must be one PostgreSQL text can hold.
    assert "\x00" not in name


@PURE
@given(domain_like)
@example("*.example.com")
@example("MÜNCHEN.de")
@example("[::1")
@example("xn--zz.example")
@example("a." * 130 + "com")
def test_normalize_domain_is_a_stored_form_or_a_reason(value: str) -> None:
    try:
        domain = normalize_domain(value)
    except Unprocessable as exc:
        assert exc.status == 422 and exc.reason
        return
    assert domain and domain.isascii() and domain == domain.lower() and len(domain) <= MAX_DOMAIN
    assert normalize_domain(domain) == domain  # idempotent: what is stored normalises to itself
    assert next(iter(parents(domain))) == domain
    assert len(obfuscated(domain)) == len(domain)


@PURE
@given(domain_like)
@example("[::1")
def test_authority_helpers_total(value: str) -> None:
    assert isinstance(host_of_authority(value), str)
    assert all(isinstance(p, str) for p in parents(value))


# ---------------------------------------------------------------------------
# Mastodon's blocklist CSV.

cells = st.sampled_from(["example.com", "*.example.org", "ex*mple.net", "suspend", "silence", "noop", "SILENCE", "x",
                         "true", "false", "1", "", " ", '"', "#comment", "a,b", "a\nb", "\x00", "c" * 1001]) | st.text(
    max_size=12
)  # fmt: skip
rows = st.lists(st.lists(cells, max_size=7), max_size=8)


def _csv_text(header: bool, body: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(CSV_HEADER)
    writer.writerows(body)
    return out.getvalue()


def _parse_or_refuse(text: str) -> None:
    try:
        specs, skipped = parse_csv(text)
    except Unprocessable as exc:
        assert exc.reason
        return
    lines = [n for n, _ in specs] + [n for n, _, _ in skipped]
    assert len(lines) == len(set(lines)), "a line is either imported or skipped, once"
    for _, spec in specs:
        assert spec.severity in SEVERITIES and normalize_domain(spec.domain) == spec.domain
        # What is imported must be storable on PostgreSQL too.
        assert "\x00" not in spec.public_comment and len(spec.public_comment) <= 1000
    for _, _, reason in skipped:
        assert reason


@PURE
@given(st.booleans(), rows)
@example(True, [["example.com", "suspend", "false", "false", "a\x00b"]])  # a NUL comment: fails PostgreSQL
def test_blocklist_csv_rows_or_a_clear_error(header: bool, body: list[list[str]]) -> None:
    _parse_or_refuse(_csv_text(header, body))


@PURE
@given(st.text(max_size=200))
@example('"' + "x" * 200_000)  # past the csv module's field limit: a csv.Error
@example('a\rb\r\n"c')
def test_blocklist_csv_arbitrary_text(text: str) -> None:
    _parse_or_refuse(text)


def _import_examples() -> list[str]:
    """A fixed spread of fuzzed CSVs (Hypothesis would rebuild the database per example)."""
    found: list[str] = [
        _csv_text(True, [["example.com", "suspend", "false", "false", "a\x00b"]]),
        _csv_text(True, [["example.com", "silence"], ["EXAMPLE.com.", "noop", "1", "1", "c" * 1000]]),
    ]

    @settings(max_examples=40, deadline=None, database=None)
    @given(st.booleans(), rows)
    def collect(header: bool, body: list[list[str]]) -> None:
        found.append(_csv_text(header, body))

    collect()
    return found


async def test_blocklist_import_never_fails_the_database(db: Database) -> None:
    """Every fuzzed CSV imports (or is refused with a reason) on SQLite and on PostgreSQL alike."""
    for text in _import_examples():
        try:
            report = await import_csv(db, text, actor="fuzz")
        except Unprocessable:
            continue
        assert report.added + report.updated + len(report.skipped) >= 0
    async with db.read() as conn:
        for block in await page(conn, BLOCKS, limit=1000):
            assert normalize_domain(block.domain) == block.domain


# ---------------------------------------------------------------------------
# The URLs Kith publishes, and reading a group's name back from one.

valid_names = st.from_regex(NAME_RE, fullmatch=True).filter(lambda n: n not in RESERVED)


@PURE
@given(valid_names, st.sampled_from(["group", "person", "application"]), st.sampled_from(["https", "http"]))
def test_published_urls_round_trip(name: str, kind: str, scheme: str) -> None:
    """Every URL built for a valid name is on our origin, and a group's URL names the group again."""
    settings_ = Settings(domain="kith.test:8443", scheme=scheme, database_url="sqlite:///unused.db")
    links = Links(settings_.base_url)
    services = SimpleNamespace(settings=settings_, links=links)
    for url in (links.actor(kind, name), links.collection(kind, name, "inbox"), links.key_id(kind, name)):
        assert origin_of(url) == (scheme, "kith.test:8443")
    # WebFinger by actor URL finds the actor the URL was built for.
    assert parse_resource(links.actor(kind, name), services) == (INSTANCE_ACTOR_NAME if kind == "application" else name)
    assert group_name_from_uri(links.group(name), links) == name
    assert parse_resource(f"acct:{name}@kith.test:8443", services) == name


@PURE
@given(resources | st.text(max_size=40))
def test_group_name_from_any_uri_is_a_name_or_none(uri: str) -> None:
    name = group_name_from_uri(uri, SERVICES.links)
    assert name is None or (name and not set(name) & set("/#?"))
