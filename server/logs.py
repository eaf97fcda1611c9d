"""Logging: one line per event, as text or as JSON lines (``KITH_LOG_FORMAT=json``).

Every line written while a web request is served carries that request's id (taken from a
sane incoming ``X-Request-Id``, else made here, and sent back in the answer), so one
request's lines can be found among many processes'. Secrets stay out: query values whose
names say they are credentials are replaced before a line is written, and Kith itself
never logs a token, password, key or signature.

The JSON formatter is a dozen lines on the standard library's ``logging.Formatter``;
a dependency (python-json-logger) would add nothing we use.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any

#: The id of the web request being served in this task, or None outside one.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("kith_request_id", default=None)

FORMATS = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"

# Query parameters that carry credentials (OAuth codes and tokens, passwords): never logged.
_SECRET_QUERY = re.compile(r"(?i)\b(access_token|refresh_token|token|code|password|client_secret)=[^&\s\"]*")


def redact(text: str) -> str:
    """``text`` with the values of credential-bearing query parameters replaced by ``[redacted]``."""
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=[redacted]", text)


class RequestContext(logging.Filter):
    """Adds ``request_id`` (and ``request_tag`` for text lines) and redacts credentials in arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid
        record.request_tag = f" [{rid}]" if rid else ""
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            line["request_id"] = record.request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for Kith and uvicorn alike (uvicorn applies it in each web process)."""
    formatter: dict[str, Any] = {"()": "server.logs.JsonFormatter"} if log_format == "json" else {"format": _TEXT}
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "kith",
        "filters": ["context"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "server.logs.RequestContext"}},
        "formatters": {"kith": formatter},
        "handlers": {"stderr": handler},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's own loggers write through the same handler, not their default ones.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": level, "handlers": [], "propagate": True},
            "alembic": {"level": "WARNING"},
        },
    }


def configure(log_format: str, level: str = "INFO") -> None:
    """Apply :func:`config` to this process."""
    logging.config.dictConfig(config(log_format, level))
