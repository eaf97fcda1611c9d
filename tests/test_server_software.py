"""Each member server gets the form of a post its software displays, known from its NodeInfo.

Mastodon shows the plain ``Announce(Note)``, Lemmy the ``Announce(Create)``; a server whose
software is not known gets both. The survey asks rarely, never a suspended server.
"""

import json
from datetime import timedelta

import httpx
import sqlalchemy as sa

from server.federation import nodeinfo
from server.federation.httpsig import IncomingRequest, ResolvedKey, verify_request
from server.groups import forms
from server.groups.membership import GroupSpec, create_group
from server.groups.redistribute import redistribute
from server.groups.survey import SoftwareSurvey
from server.jobs import build_worker
from server.moderation.blocklist import store
from server.moderation.blocklist.store import BlockSpec
from server.tables import fanouts, server_software
from server.types import utcnow
from tests.fakes.members import add_members

NOTE = "https://m0.example/notes/1"


def _server(group, seen, software: str | None, *, nodeinfo_host: str | None = None):
    """A remote server: NodeInfo naming ``software`` (None: 404), and a shared inbox that checks signatures."""

    async def lookup(key_id, *, refresh):
        return ResolvedKey(key_id, "https://kith.test/groups/g", group.public_key_pem)

    async def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if request.method == "GET" and request.url.path == "/.well-known/nodeinfo":
            if software is None:
                return httpx.Response(404)
            href = f"https://{nodeinfo_host or host}/nodeinfo/2.0"
            return httpx.Response(
                200, json={"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": href}]}
            )
        if request.method == "GET" and request.url.path == "/nodeinfo/2.0":
            return httpx.Response(200, json={"version": "2.0", "software": {"name": software, "version": "4.3.1"}})
        assert request.method == "POST"
        await verify_request(
            IncomingRequest(request.method, str(request.url), dict(request.headers), request.content), lookup
        )
        body = json.loads(request.content)
        seen.append((host, "wrapped" if isinstance(body["object"], dict) else "plain"))
        return httpx.Response(202)

    return handler


async def _group_with(services, network, servers: dict[str, str | None]):
    group = await create_group(services.db, GroupSpec(name="g"))
    seen: list[tuple[str, str]] = []
    for host, software in servers.items():
        network.add_handler(host, _server(group, seen, software))
    await add_members(services.db, group.id, [(f"https://{h}/users/m", f"https://{h}/inbox") for h in servers])
    return group, seen


async def _post(services, group):
    """A new top-level post's two Announces, queued as one fan-out, as intake does."""
    create = {"id": f"{NOTE}/activity", "type": "Create", "actor": "https://m0.example/users/m", "object": NOTE}
    async with services.db.transaction() as conn:
        return await redistribute(conn, services, group, create, post_id=None, plain_object=NOTE)


def _survey(services, **kwargs):
    return SoftwareSurvey(services.db, services.fetcher, is_blocked=services.is_blocked, **kwargs)


def _nodeinfo_asks(network, host=None):
    return [
        r for r in network.requests if r.method == "GET" and (host is None or r.url.host == host)
    ]  # fmt: skip


def test_forms_of_a_post_pair_and_what_each_software_gets():
    wrapped = {"type": "Announce", "actor": "g", "object": {"type": "Create", "object": {"id": NOTE}}}
    plain = {"type": "Announce", "actor": "g", "object": NOTE}
    assert forms.forms_of([wrapped, plain]) == ["wrapped", "plain"]
    assert forms.wanted(["wrapped", "plain"], "mastodon") == [False, True]
    assert forms.wanted(["wrapped", "plain"], "lemmy") == [True, False]
    assert forms.wanted(["wrapped", "plain"], None) == [True, True]
    assert forms.wanted(["wrapped", "plain"], "friendica") == [True, True]
    # Not a pair: a lone Announce, a plain one of another object, or by another actor goes to everyone.
    assert forms.forms_of([wrapped]) == [None]
    assert forms.forms_of([wrapped, {**plain, "object": "https://other.example/2"}]) == [None, None]
    assert forms.forms_of([wrapped, {**plain, "actor": "h"}]) == [None, None]
    undo = {"type": "Undo", "actor": "g", "object": plain}
    assert forms.forms_of([undo]) == [None] and forms.wanted([None], "mastodon") == [True]


def test_nodeinfo_documents_are_read_strictly():
    links = {"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": "https://a.example/ni"}]}
    assert nodeinfo.document_url(links, "https://a.example") == "https://a.example/ni"
    assert nodeinfo.document_url(links, "https://b.example") is None  # another server's document is not followed
    assert nodeinfo.document_url({"links": "x"}, "https://a.example") is None
    assert nodeinfo.document_url([], "https://a.example") is None
    assert nodeinfo.software_of({"software": {"name": "Mastodon", "version": "4.3"}}) == nodeinfo.Software(
        "mastodon", "4.3"
    )
    assert nodeinfo.software_of({"software": {"name": "<script>"}}).name is None
    assert nodeinfo.software_of({"software": {"name": "x" * 100}}).name is None
    assert nodeinfo.software_of({"software": "mastodon"}).name is None
    assert nodeinfo.software_of(None).error


async def test_each_server_gets_the_form_its_software_displays(services, network):
    servers = {"masto.example": "mastodon", "lemmy.example": "lemmy", "quiet.example": None, "other.example": "nodebb"}
    group, seen = await _group_with(services, network, servers)
    assert await _survey(services).run_once() == 4
    async with services.db.read() as conn:
        assert await nodeinfo.known(conn, servers) == {
            "masto.example": "mastodon",
            "lemmy.example": "lemmy",
            "other.example": "nodebb",
        }
    await _post(services, group)
    await build_worker(services).drain()
    assert sorted(seen) == [
        ("lemmy.example", "wrapped"),
        ("masto.example", "plain"),
        ("other.example", "plain"),  # software Kith does not know: both, as before
        ("other.example", "wrapped"),
        ("quiet.example", "plain"),  # no NodeInfo: both
        ("quiet.example", "wrapped"),
    ]
    async with services.db.read() as conn:
        [row] = (await conn.execute(sa.select(fanouts))).all()
    assert (row.state, row.sent, row.failed) == ("done", 4, 0)


async def test_without_a_survey_every_server_gets_both(services, network):
    group, seen = await _group_with(services, network, {"masto.example": "mastodon", "lemmy.example": "lemmy"})
    await _post(services, group)
    await build_worker(services).drain()
    assert sorted(seen) == [
        ("lemmy.example", "plain"),
        ("lemmy.example", "wrapped"),
        ("masto.example", "plain"),
        ("masto.example", "wrapped"),
    ]
    assert _nodeinfo_asks(network) == []  # fan-outs never ask: only the survey does


async def test_a_suspended_server_is_never_asked(services, network):
    _group, _seen = await _group_with(services, network, {"masto.example": "mastodon", "evil.example": "mastodon"})
    # Still a member (the block's effects not run yet): the survey must leave it out all the same.
    survey = SoftwareSurvey(services.db, services.fetcher, is_blocked=lambda host: host == "evil.example")
    assert await survey.run_once() == 1
    assert _nodeinfo_asks(network, "evil.example") == [] and len(_nodeinfo_asks(network, "masto.example")) == 2
    # A real suspension, through the blocklist the worker uses.
    await store.create(services.db, store.BLOCKS, BlockSpec("evil.example", severity="suspend"), actor="cli")
    await services.blocklist.refresh_if_changed()
    async with services.db.transaction() as conn:
        await conn.execute(sa.delete(server_software))
    assert await _survey(services).run_once() == 1
    assert _nodeinfo_asks(network, "evil.example") == []


async def test_answers_are_cached_and_asked_again_rarely(services, network):
    await _group_with(services, network, {"masto.example": "mastodon", "quiet.example": None})
    survey = _survey(services)
    assert await survey.run_once() == 2
    asks = len(_nodeinfo_asks(network))
    assert asks == 3  # two GETs for mastodon, one 404 for quiet
    assert await survey.run_once() == 0 and len(_nodeinfo_asks(network)) == asks  # cached

    async def age(hours: float) -> None:
        async with services.db.transaction() as conn:
            await conn.execute(sa.update(server_software).values(checked_at=utcnow() - timedelta(hours=hours)))

    await age(25)  # a failed lookup is retried after a day, a known one only after a week
    assert await survey.run_once() == 1 and _nodeinfo_asks(network, "quiet.example")[-1] is network.requests[-1]
    await age(24 * 8)
    assert await survey.run_once() == 2


async def test_a_failed_lookup_keeps_what_was_known(services, network):
    _group, _seen = await _group_with(services, network, {"masto.example": "mastodon"})
    survey = _survey(services)
    await survey.run_once()
    network.add_handler("masto.example", lambda request: httpx.Response(500))
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(server_software).values(checked_at=utcnow() - timedelta(days=8)))
    assert await survey.run_once() == 1
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(server_software))).one()
        assert await nodeinfo.known(conn, ["masto.example"]) == {"masto.example": "mastodon"}
    assert row.software == "mastodon" and row.error and "500" in row.error


async def test_a_nodeinfo_link_to_another_host_is_not_followed(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    network.add_handler("sly.example", _server(group, [], "lemmy", nodeinfo_host="elsewhere.example"))
    await add_members(services.db, group.id, [("https://sly.example/users/m", "https://sly.example/inbox")])
    await _survey(services).run_once()
    assert network.sent_to("elsewhere.example") == []
    async with services.db.read() as conn:
        assert await nodeinfo.known(conn, ["sly.example"]) == {}
