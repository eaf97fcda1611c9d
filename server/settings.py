"""Settings read from the environment into one frozen object; no I/O at import.

``Settings.from_env()`` validates every value and raises ``ConfigError`` with a
message that names the variable, so a bad value stops the server at start with
one clear line instead of failing later on the first request.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from server.errors import ConfigError

_HOST_RE = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::\d{1,5})?$"
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Retention:
    """How many days finished work is kept before the worker's prune deletes it (``KITH_RETENTION_DAYS``).

    Only work done is pruned; what people wrote and what moderators decided (posts and their
    raw JSON, reports, the moderation log, the admin audit log) is kept.
    """

    inbox: int = 7  # processed (or dead) inbox activities; their ids also de-duplicate late retries
    deliveries: int = 30  # delivered, dead and gone delivery rows
    fanouts: int = 7  # finished fan-outs
    tokens: int = 30  # revoked OAuth tokens (expired authorization codes go at once)
    actors: int = 7  # remote actors no follow, post, report, ban or moderator row names, unused this long

    @classmethod
    def parse(cls, value: str) -> Retention:
        """``14`` (every kind) or ``inbox=7,deliveries=30`` (those kinds; the rest keep their defaults)."""
        value = value.strip()
        if not value:
            return cls()
        names = [f.name for f in fields(cls)]
        if value.isdigit():
            return cls(**dict.fromkeys(names, _days("KITH_RETENTION_DAYS", value)))
        given: dict[str, int] = {}
        for part in value.split(","):
            name, sep, days = (s.strip() for s in part.partition("="))
            if not sep or name not in names:
                raise ConfigError(
                    f"KITH_RETENTION_DAYS={value!r}: {part.strip()!r} is not KIND=DAYS "
                    f"(kinds: {', '.join(names)}), nor is the whole a number of days"
                )
            if name in given:
                raise ConfigError(f"KITH_RETENTION_DAYS={value!r} names {name} twice")
            given[name] = _days(f"KITH_RETENTION_DAYS ({name})", days)
        return replace(cls(), **given)


def _days(what: str, value: str) -> int:
    """A whole number of days from 1 to 3650, else ``ConfigError``."""
    if not value.isdigit() or not 1 <= int(value) <= 3650:
        raise ConfigError(f"{what}={value!r} must be a whole number of days from 1 to 3650")
    return int(value)


@dataclass(frozen=True)
class Settings:
    """Everything configurable, validated once at start."""

    domain: str = "localhost:8000"
    scheme: str = "https"
    database_url: str = "sqlite:///kith.db"
    allow_private_addresses: bool = False
    secret_key: str | None = None
    log_format: str = "text"  # or "json": one JSON object per line
    metrics_token: str | None = None  # a bearer token that may read /metrics from anywhere
    retention: Retention = field(default_factory=Retention)

    @property
    def base_url(self) -> str:
        """``scheme://domain`` with no trailing slash, the prefix of every URL we publish."""
        return f"{self.scheme}://{self.domain}"

    @property
    def host(self) -> str:
        """The domain without its port, as used in blocklists and NodeInfo."""
        return self.domain.rsplit(":", 1)[0] if ":" in self.domain else self.domain

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate ``KITH_*`` variables (and a ``.env`` file in the working directory)."""
        env = dict(_read_dotenv(Path(".env"))) if environ is None else {}
        env.update(os.environ if environ is None else environ)
        domain = env.get("KITH_DOMAIN", cls.domain).strip().lower()
        if not _HOST_RE.match(domain):
            raise ConfigError(f"KITH_DOMAIN={domain!r} is not a host name (with an optional :port)")
        if ":" in domain and not 0 < int(domain.rsplit(":", 1)[1]) < 65536:
            raise ConfigError(f"KITH_DOMAIN={domain!r} has a port out of range")
        scheme = env.get("KITH_SCHEME", default_scheme(domain)).strip().lower()
        if scheme not in ("https", "http"):
            raise ConfigError(f"KITH_SCHEME={scheme!r} must be 'https' or 'http'")
        database_url = env.get("KITH_DATABASE_URL", cls.database_url).strip()
        validate_database_url(database_url)
        secret = env.get("KITH_SECRET_KEY") or None
        if secret is not None and len(secret) < 16:
            raise ConfigError("KITH_SECRET_KEY must be at least 16 characters")
        log_format = env.get("KITH_LOG_FORMAT", cls.log_format).strip().lower() or cls.log_format
        if log_format not in ("text", "json"):
            raise ConfigError(f"KITH_LOG_FORMAT={log_format!r} must be 'text' or 'json'")
        metrics_token = env.get("KITH_METRICS_TOKEN", "").strip() or None
        if metrics_token is not None and len(metrics_token) < 16:
            raise ConfigError("KITH_METRICS_TOKEN must be at least 16 characters")
        return cls(
            domain=domain,
            scheme=scheme,
            database_url=database_url,
            allow_private_addresses=_flag(env, "KITH_ALLOW_PRIVATE_ADDRESSES"),
            secret_key=secret,
            log_format=log_format,
            metrics_token=metrics_token,
            retention=Retention.parse(env.get("KITH_RETENTION_DAYS", "")),
        )


def default_scheme(domain: str) -> str:
    """``http`` for a server on this machine (localhost or a loopback address), else ``https``.

    So ``kith serve`` and every other ``kith`` command agree on the ids they print without
    ``KITH_SCHEME`` repeated in each shell: a development server on localhost has no TLS,
    and anything with a public name sits behind a TLS proxy.
    """
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return "http"
    try:
        return "http" if ipaddress.ip_address(host).is_loopback else "https"
    except ValueError:
        return "https"


def validate_database_url(url: str) -> None:
    """Refuse anything but ``sqlite:///path`` and ``postgresql://...``, with a reason."""
    if url.startswith("sqlite:///") or url.startswith("sqlite+aiosqlite:///"):
        if url.rstrip("/").endswith(("sqlite:", "aiosqlite:")):
            raise ConfigError(f"KITH_DATABASE_URL={url!r} names no file (use sqlite:///kith.db)")
        return
    if re.match(r"^postgres(?:ql)?(?:\+asyncpg)?://[^/]*(?:/[^/?]*)?(?:\?.*)?$", url):
        return
    raise ConfigError(f"KITH_DATABASE_URL={url!r} is not supported: use sqlite:///path.db or postgresql://user@host/db")


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "0").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} must be 1 or 0")


def _read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file; blank lines and ``#`` comments skipped."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values
