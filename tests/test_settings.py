import pytest

from server.errors import ConfigError
from server.settings import Retention, Settings


def test_defaults():
    s = Settings.from_env({})
    assert s.domain == "localhost:8000"
    assert s.scheme == "http"  # a server on this machine: see test_scheme_follows_the_domain
    assert s.database_url == "sqlite:///kith.db"
    assert s.allow_private_addresses is False
    assert s.base_url == "http://localhost:8000"
    assert s.host == "localhost"


@pytest.mark.parametrize(
    ("domain", "scheme"),
    [
        ("localhost:8000", "http"),
        ("localhost", "http"),
        ("kith.localhost:8080", "http"),
        ("127.0.0.1:8000", "http"),
        ("127.0.0.2", "http"),
        ("groups.example.org", "https"),
        ("example.com:8443", "https"),
        ("10.0.0.5:8000", "https"),  # a private address is another machine: TLS is its proxy's business
    ],
)
def test_scheme_follows_the_domain(domain, scheme):
    """Issue 12, item 12: every shell agrees on the scheme without KITH_SCHEME (the README sets none)."""
    assert Settings.from_env({"KITH_DOMAIN": domain}).scheme == scheme
    assert Settings.from_env({"KITH_DOMAIN": domain, "KITH_SCHEME": "https"}).scheme == "https"


def test_cli_and_server_agree_from_a_second_shell(tmp_path, monkeypatch):
    """The README's first shell runs ``kith serve``; a second runs ``kith group create``: same ids."""
    monkeypatch.chdir(tmp_path)
    for name in ("KITH_DOMAIN", "KITH_SCHEME"):
        monkeypatch.delenv(name, raising=False)
    first, second = Settings.from_env(), Settings.from_env()
    assert first.base_url == second.base_url == "http://localhost:8000"
    (tmp_path / ".env").write_text("KITH_DOMAIN=groups.example.org\n")
    assert Settings.from_env().base_url == "https://groups.example.org"


def test_reads_every_variable():
    s = Settings.from_env(
        {
            "KITH_DOMAIN": "Groups.Example.org",
            "KITH_SCHEME": "http",
            "KITH_DATABASE_URL": "postgresql://kith@db/kith",
            "KITH_ALLOW_PRIVATE_ADDRESSES": "1",
            "KITH_SECRET_KEY": "x" * 32,
        }
    )
    assert (s.domain, s.scheme, s.allow_private_addresses) == ("groups.example.org", "http", True)
    assert s.database_url == "postgresql://kith@db/kith"
    assert s.secret_key == "x" * 32


def test_settings_are_frozen():
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.domain = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"KITH_DOMAIN": "not a host"}, "KITH_DOMAIN"),
        ({"KITH_DOMAIN": "example.com:99999"}, "KITH_DOMAIN"),
        ({"KITH_SCHEME": "ftp"}, "KITH_SCHEME"),
        ({"KITH_DATABASE_URL": "mysql://x/y"}, "KITH_DATABASE_URL"),
        ({"KITH_DATABASE_URL": "sqlite:///"}, "KITH_DATABASE_URL"),
        ({"KITH_ALLOW_PRIVATE_ADDRESSES": "maybe"}, "KITH_ALLOW_PRIVATE_ADDRESSES"),
        ({"KITH_SECRET_KEY": "short"}, "KITH_SECRET_KEY"),
        ({"KITH_METRICS_TOKEN": "short"}, "KITH_METRICS_TOKEN"),
        ({"KITH_RETENTION_DAYS": "0"}, "KITH_RETENTION_DAYS"),
        ({"KITH_RETENTION_DAYS": "a week"}, "KITH_RETENTION_DAYS"),
        ({"KITH_RETENTION_DAYS": "inbox=7,posts=30"}, "KITH_RETENTION_DAYS"),
        ({"KITH_RETENTION_DAYS": "inbox=7,inbox=8"}, "KITH_RETENTION_DAYS"),
        ({"KITH_RETENTION_DAYS": "inbox=-1"}, "KITH_RETENTION_DAYS"),
        ({"KITH_RETENTION_DAYS": "inbox=99999"}, "KITH_RETENTION_DAYS"),
    ],
)
def test_bad_values_name_the_variable(env, names):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert names in info.value.reason


def test_retention_days():
    """Issue 16: defaults stated in the README; one number for all, or some kinds by name."""
    assert Settings.from_env({}).retention == Retention(inbox=7, deliveries=30, fanouts=7, tokens=30, actors=7)
    assert set(vars(Settings.from_env({"KITH_RETENTION_DAYS": "14"}).retention).values()) == {14}
    some = Settings.from_env({"KITH_RETENTION_DAYS": " inbox=3, deliveries=60 "}).retention
    assert (some.inbox, some.deliveries, some.fanouts, some.tokens, some.actors) == (3, 60, 7, 30, 7)


def test_metrics_token():
    assert Settings.from_env({}).metrics_token is None
    assert Settings.from_env({"KITH_METRICS_TOKEN": "t" * 20}).metrics_token == "t" * 20
