import pytest

from server.errors import ConfigError
from server.settings import Settings


def test_defaults():
    s = Settings.from_env({})
    assert s.domain == "localhost:8000"
    assert s.scheme == "https"
    assert s.database_url == "sqlite:///kith.db"
    assert s.allow_private_addresses is False
    assert s.base_url == "https://localhost:8000"
    assert s.host == "localhost"


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
    ],
)
def test_bad_values_name_the_variable(env, names):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert names in info.value.reason
