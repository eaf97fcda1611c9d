"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests skip when no server answers, unless ``KITH_REQUIRE_POSTGRES=1``
(set by ``.ci/run``), which turns a missing server into a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from starlette.applications import Starlette

from server import accounts, local_actors
from server.app import create_app
from server.db import Database
from server.jobs import build_worker
from server.services import Services
from server.settings import Settings
from server.tables import metadata
from server.worker import Worker
from tests.fakes.keys import LOCAL_KEYS, REMOTE_KEYS
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.network import Network
from tests.fakes.world import World, social_server

PG_ADMIN_URL = os.environ.get("KITH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("KITH_REQUIRE_POSTGRES") == "1"
DOMAIN = "kith.test"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "full_cost: fresh RSA keys for local actors and argon2 at production cost (see local_keys)"
    )


# argon2id with the smallest parameters argon2 allows: the same algorithm, code and hash
# format (parameters travel in the hash, so verify still checks them), without the ~64 MiB
# and three passes per hash that make each test account cost a tenth of a second or more.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def local_keys(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process local actors get pre-generated keys (tests/fakes/keys.py) and accounts a cheap argon2.

    The slow parts of creating a local actor are RSA generation and password hashing, and
    almost every test creates several. Neither is what those tests test, so they are made
    cheap here; signing, verifying and password checks run unchanged. A test marked
    ``@pytest.mark.full_cost`` gets both at production cost. ``kith`` subprocesses always do.
    """
    REMOTE_KEYS.restart()  # the fakes' keys: never Kith's, so pre-generated in every test
    if request.node.get_closest_marker("full_cost"):
        return
    LOCAL_KEYS.restart()
    monkeypatch.setattr(local_actors, "new_keypair", LOCAL_KEYS.new_keypair)
    monkeypatch.setattr(accounts, "_hasher", CHEAP_HASHER)


async def _pg_create(name: str) -> str | None:
    admin = Database(PG_ADMIN_URL)
    try:
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await admin.dispose()
    db = Database(_pg_url(name))
    await db.migrate()
    await db.dispose()
    return None


async def _pg_drop(name: str) -> None:
    admin = Database(PG_ADMIN_URL)
    async with admin.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A migrated PostgreSQL database for this test session, or None when unavailable."""
    name = f"kith_test_{uuid.uuid4().hex[:10]}"
    error = asyncio.run(_pg_create(name))
    if error is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (KITH_REQUIRE_POSTGRES=1) but unavailable: {error}")
        yield None
        return
    yield _pg_url(name)
    asyncio.run(_pg_drop(name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied per test (migrating each time would be slow)."""
    path = tmp_path_factory.mktemp("template") / "kith.db"

    async def make() -> None:
        db = Database(f"sqlite:///{path}")
        await db.migrate()
        await db.dispose()  # the last connection to close checkpoints the WAL into the file

    asyncio.run(make())
    return path


# Emptying the PostgreSQL database between tests. A TRUNCATE of every table costs a few
# hundred milliseconds (each table's files are replaced); the few rows a test leaves are
# gone sooner with DELETE, children first. Then every sequence a test used starts again
# at 1, as TRUNCATE ... RESTART IDENTITY did, so ids are the same on both databases.
# One DO block: one round trip instead of one per table.
_EMPTY = (
    "DO $$ BEGIN "
    + " ".join(f"DELETE FROM {table.name};" for table in reversed(metadata.sorted_tables))
    + " PERFORM setval(format('%I.%I', schemaname, sequencename)::regclass, 1, false)"
    " FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL;"
    " END $$"
)


async def _truncate(url: str) -> None:
    """Empty every table of the session's PostgreSQL database and restart its sequences."""
    db = Database(url)
    async with db.transaction() as conn:
        await conn.execute(sa.text(_EMPTY))
    await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        target = tmp_path / "kith.db"
        shutil.copy(template, target)
        return f"sqlite:///{target}"
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip("PostgreSQL not available (set KITH_REQUIRE_POSTGRES=1 to make this a failure)")
    asyncio.run(_truncate(url))
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        domain=DOMAIN,
        scheme="https",
        database_url=database_url,
        allow_private_addresses=True,
        secret_key="test-secret-key-0123456789",
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url)
    yield database
    await database.dispose()


@pytest.fixture
def network() -> Network:
    """The in-process internet this test's instance and its fake remotes share."""
    return Network()


@pytest.fixture
async def services(settings: Settings, network: Network) -> AsyncIterator[Services]:
    svc = await Services.open(settings, transport=network, migrate=False)
    yield svc
    await svc.close()


@pytest.fixture
def app(settings: Settings, services: Services, network: Network) -> Starlette:
    """This instance's app, reachable on the network as ``kith.test`` (no worker task)."""
    application = create_app(settings, services=services, run_worker=False)
    network.add_app(DOMAIN, application)
    return application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to this instance's app in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"https://{DOMAIN}") as c:
        yield c


@pytest.fixture
def worker(services: Services) -> Worker:
    """The background worker, to be drained by hand (``await worker.drain()``)."""
    return build_worker(services)


@pytest.fixture
async def mastodon(network: Network) -> AsyncIterator[FakeMastodon]:
    """A fake Mastodon server at mastodon.example with one user, alice."""
    fake = FakeMastodon("mastodon.example", network)
    fake.add_user("alice")
    yield fake
    await fake.http.aclose()


@pytest.fixture
async def social(network: Network) -> AsyncIterator[FakeMastodon]:
    """A second fake server, social.example, with one user, bob, signing with bovine."""
    fake = social_server(network)
    yield fake
    await fake.http.aclose()


@pytest.fixture
async def world(
    client: httpx.AsyncClient,
    services: Services,
    worker: Worker,
    network: Network,
    mastodon: FakeMastodon,
    social: FakeMastodon,
) -> World:
    """Group bookclub (owner mod1, moderator mod2), members alice@mastodon.example and bob@social.example.

    See tests/fakes/world.py; ``world.group`` is the group, ``world.post``/``reply``/``join`` act.
    """
    return await World(client, services, worker, network, mastodon, social).build()
