"""XSS: remote content full of script, rendered on every HTML page, runs nothing.

A hostile actor (display name, handle, profile URL all payloads) joins the group and posts
payloads in content, summary, name, links and mentions; as a listed remote moderator it
also writes payloads into the moderation log. Every page is parsed (``html.parser``) and
must hold no script element, no ``on*`` attribute, no ``javascript:``/``data:`` URL, no
style element or style attribute of theirs, and carry a Content-Security-Policy.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.moderation.authority import add_remote_moderator
from server.oauth import register_app
from server.tables import posts
from tests.fakes.mastodon import FakeMastodon
from tests.hostile import GROUP, INBOX, PUBLIC, make_world

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)><script>alert(1)</script></svg>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href=" jav&#x09;ascript:alert(1)">tab</a>',
    '<a href="data:text/html,<script>alert(1)</script>">data</a>',
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<p style="background:url(javascript:alert(1))">styled</p>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    '<math><mi xlink:href="javascript:alert(1)">m</mi></math>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">go</button></form>',
    '<base href="javascript:alert(1)//">',
    '<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="></object>',
    "<div><p>broken <b>markup <i></div><script>alert(1)",
]
PAYLOAD = "MARKER " + " ".join(PAYLOADS)
BAD_URL = re.compile(r"^(javascript|data|vbscript):")
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "xlink:href", "poster", "background", "content"}
DANGEROUS_TAGS = {"script", "iframe", "object", "embed", "style", "base", "svg", "math", "frame", "applet"}


class Audit(HTMLParser):
    """Collects what could run in a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DANGEROUS_TAGS:
            self.found.append(f"<{tag}>")
        if tag == "meta" and any(k == "http-equiv" for k, _ in attrs):
            self.found.append("<meta http-equiv>")
        for name, value in attrs:
            value = value or ""
            squeezed = re.sub(r"[\x00-\x20]", "", value).lower()
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}>")
            elif (
                name in URL_ATTRIBUTES and BAD_URL.match(squeezed) and (tag, name, value) != ("link", "href", "data:,")
            ):
                self.found.append(f"<{tag} {name}={value[:40]!r}>")
            elif name == "style" and not re.fullmatch(r"width: \d+%", value):  # the poll bars: ours
                self.found.append(f"<{tag} style={value[:40]!r}>")


def audit(html: str) -> list[str]:
    parser = Audit()
    parser.feed(html)
    parser.close()
    return parser.found


def test_the_audit_finds_every_payload():
    """The harness itself: each payload, unescaped, is caught."""
    assert [p for p in PAYLOADS if p != PAYLOADS[-1] and not audit(p)] == []


class Hostile(FakeMastodon):
    """A server whose actor's every displayed field is a payload."""

    def actor_doc(self, name: str) -> dict[str, Any]:
        doc = super().actor_doc(name)
        doc.update(
            name=PAYLOAD[:400],
            preferredUsername='<img src=x onerror=alert(1)>"',
            url="javascript:alert(1)",
            summary=PAYLOAD,
            icon={"type": "Image", "url": "javascript:alert(1)"},
        )
        return doc


@pytest.fixture
async def pages(services, client, worker, mastodon, network):
    """The group with the hostile actor's posts and moderation in it; returns (world, thread ids)."""
    world = await make_world(services, client, worker, mastodon)
    evil = Hostile("xss.example", network)
    evil.add_user("mallory", keys=mastodon.users["alice"])
    await world.deliver(evil, "mallory", evil.follow("mallory", GROUP), INBOX)
    note = evil.note("mallory", PAYLOAD, to_group=GROUP)
    note.update(
        summary=PAYLOAD[:300],
        name="<script>alert(1)</script> title",
        url="javascript:alert(1)",
        tag=[
            *note["tag"],
            {"type": "Mention", "href": "javascript:alert(1)", "name": "<script>alert(1)</script>"},
            {"type": "Hashtag", "href": "javascript:alert(1)", "name": "#<svg onload=alert(1)>"},
        ],
    )
    await world.deliver(evil, "mallory", evil.create("mallory", note))
    reply = evil.note("mallory", "<p>reply " + PAYLOAD + "</p>", to_group=GROUP, in_reply_to=note["id"])
    await world.deliver(evil, "mallory", evil.create("mallory", reply))
    async with services.db.transaction() as conn:
        await add_remote_moderator(conn, world.group_id, evil.actor_uri("mallory"))
    alice_note = await world.post_by(world.mastodon, "alice", "<p>alice</p>")
    for kind, obj, extra in (
        ("Lock", alice_note["id"], {}),
        ("Block", "javascript:alert(1)", {"target": GROUP}),
        ("Block", world.mastodon.actor_uri("zed"), {"target": GROUP}),
        ("Add", alice_note["id"], {"target": f"{GROUP}/featured"}),
    ):
        activity = {
            "id": evil.new_id(),
            "type": kind,
            "actor": evil.actor_uri("mallory"),
            "object": obj,
            "summary": PAYLOAD[:500],
            "audience": GROUP,
            "cc": [GROUP],
            "to": [PUBLIC],
            **extra,
        }
        await world.deliver(evil, "mallory", activity)
    await evil.http.aclose()
    await world.social.http.aclose()
    async with services.db.read() as conn:
        ids = [r.id for r in (await conn.execute(sa.select(posts.c.id).where(posts.c.root_id.is_(None)))).all()]
    assert len(ids) == 2  # mallory's thread and alice's: the payloads are in
    return world, ids


async def test_no_page_runs_the_payloads(pages, client, services):
    _, ids = pages
    await create_user(services.db, "owner", password="correct horse battery")
    app, _ = await register_app(
        services.db, name=PAYLOAD[:250], redirect_uris=["https://client.example/cb"], website="https://client.example/"
    )
    state = quote('"><script>alert(1)</script>')
    urls = [
        "/",
        "/about",
        "/groups/bookclub",
        *[f"/groups/bookclub/threads/{i}" for i in ids],
        "/groups/bookclub/modlog",
        "/users/owner",
        f"/oauth/authorize?response_type=code&client_id={app.client_id}&redirect_uri=https://client.example/cb"
        f"&scope=read&state={state}",
        f"/oauth/authorize?response_type=code&client_id={state}&redirect_uri=javascript:alert(1)",
        "/groups/" + quote("<script>alert(1)</script>"),
        "/groups/bookclub/threads/" + quote('"><svg onload=alert(1)>'),
        "/groups/bookclub/modlog?max_id=" + quote("<script>alert(1)</script>"),
        "/groups/bookclub?before=" + quote("<img src=x onerror=alert(1)>"),
        "/nowhere/" + quote("<script>alert(1)</script>"),
    ]
    found = {}
    for url in urls:
        r = await client.get(url, headers={"Accept": "text/html"})
        assert r.status_code < 500 and r.headers["content-type"].startswith("text/html"), (url, r.status_code)
        problems = audit(r.text)
        csp = r.headers.get("content-security-policy", "")
        if "script-src" not in csp and "default-src 'none'" not in csp:
            problems.append(f"Content-Security-Policy: {csp!r}")
        if problems:
            found[url] = problems
    assert found == {}, "\n".join(f"{u}: {p}" for u, p in found.items())
    group_page = (await client.get("/groups/bookclub", headers={"Accept": "text/html"})).text
    assert ("MARKER" in group_page and "&lt;script&gt;" in group_page) or "alert(1)" in group_page
